"""The faces demo app on a real photo (scikit-image's astronaut): found where the face is, apps run on the crop."""

import base64

import cv2
import numpy as np
import pytest
from skimage.data import astronaut

pytestmark = pytest.mark.django_db

# Eileen Collins's face in the 512x512 photo, by eye: its centre and the range of its side, in pixels.
FACE_CENTRE = (225, 115)
CENTRE_TOLERANCE = 25
FACE_SIDE = (60, 140)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR)


def jpeg(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return data.tobytes()


def png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    assert ok
    return data.tobytes()


def upload(client, url: str, data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post(url, {"img": SimpleUploadedFile("photo.jpg", data, "image/jpeg")}, format="multipart")


def test_the_face_is_found_where_it_is_and_each_app_runs_on_its_crop(faces_store, client, photo):
    data = jpeg(photo)
    response = upload(client, "/api/apps/faces/predict/", data)
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["app"], body["demo"]) == ("faces", False) and body["version"]
    [face] = body["faces"]
    x, y, w, h = face["box"]
    assert abs(x + w / 2 - FACE_CENTRE[0]) < CENTRE_TOLERANCE and abs(y + h / 2 - FACE_CENTRE[1]) < CENTRE_TOLERANCE
    assert FACE_SIDE[0] <= w <= FACE_SIDE[1] and FACE_SIDE[0] <= h <= FACE_SIDE[1]
    assert face["score"] > 1
    crop = png(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[y : y + h, x : x + w])
    for app in ("facescore", "predictsex"):
        direct = upload(client, f"/api/apps/{app}/predict/", crop).json()["result"]
        assert face["apps"][app] == direct  # exactly what the app answers for that crop
    assert [r["name"] for r in face["apps"]["facescore"]] == ["facescore_cnn.h5", "facescore_small.keras"]
    assert face["apps"]["predictsex"][0]["label"] in ("female", "male")


def test_a_photo_without_a_face_gives_an_empty_list(faces_store, client):
    response = upload(client, "/api/apps/faces/predict/", png(np.full((200, 300, 3), 128, np.uint8)))
    assert response.status_code == 200 and response.json()["faces"] == []


def test_several_photos_give_one_entry_each_and_the_sample_is_the_astronaut(faces_store, client, photo):
    images = [base64.b64encode(jpeg(photo)).decode(), base64.b64encode(png(np.zeros((50, 50, 3), np.uint8))).decode()]
    body = client.post("/api/apps/faces/predict/", {"images": images}, format="json").json()
    assert [len(entry["faces"]) for entry in body["predictions"]] == [1, 0]
    sample = client.get("/api/apps/faces/predict/").json()
    assert sample["faces"][0]["box"] == body["predictions"][0]["faces"][0]["box"]


def test_tensors_are_refused_with_what_to_send(faces_store, client):
    response = client.post("/api/apps/faces/predict/", {"instances": [[1, 2]]}, format="json")
    assert response.status_code == 400 and "faces takes photos" in response.json()["error"]


def test_the_predictor_draws_each_face_on_the_photo_at_its_own_size(faces_store, client, photo):
    data = jpeg(photo)
    response = client.post("/faces/predictor", base64.b64encode(data), content_type="text/plain")
    assert response.status_code == 200, response.content
    drawn = cv2.imdecode(np.frombuffer(base64.b64decode(response.content), np.uint8), cv2.IMREAD_COLOR)
    assert drawn.shape == photo.shape
    [face] = upload(client, "/api/apps/faces/predict/", data).json()["faces"]
    x, y, w, h = face["box"]
    edge = drawn[y + h // 2, x]  # the middle of the box's left side: the green box (BGR)
    assert edge[1] > 200 and edge[0] < 80 and edge[2] < 80
    below = drawn[y + h + 4 : y + h + 40, x : x + w]  # the dark band of text written under the box
    assert below.mean() < photo[y + h + 4 : y + h + 40, x : x + w].mean()


def test_infer_keeps_the_seed_envelope(faces_store, client, photo):
    response = upload(client, "/faces/infer", jpeg(photo))
    body = response.json()
    assert (response.status_code, body["code"], body["message"]) == (200, 0, "success")
    assert body["data"]["app"] == "faces" and len(body["data"]["faces"]) == 1
