"""OpenAPI: the schema describes every input form and error; Swagger UI runs on local assets only."""

import re

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(client):
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_schema_is_valid_without_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))


def test_predict_documents_every_input_form(schema):
    post = schema["paths"]["/api/apps/{app}/predict/"]["post"]
    content = post["requestBody"]["content"]
    assert set(content) == {"multipart/form-data", "application/json", "application/x-www-form-urlencoded"}
    json_forms = schema["components"]["schemas"]["PredictJsonRequest"]["oneOf"]
    fields = {
        next(iter(schema["components"]["schemas"][ref["$ref"].rsplit("/", 1)[1]]["properties"])) for ref in json_forms
    }
    assert fields == {"image", "images", "imgPath", "instances", "inputs"}
    upload = schema["components"]["schemas"]["ImageUploadRequest"]["properties"]
    assert {"img", "image", "imgPath", "inputs"} <= set(upload)
    assert "get" in schema["paths"]["/api/apps/{app}/predict/"]


@pytest.mark.parametrize(
    "path, method, statuses",
    [
        ("/api/apps/{app}/predict/", "post", {"400", "401", "403", "404", "413", "415", "503"}),
        ("/api/apps/{app}/predict/", "get", {"401", "403", "404", "413", "415", "503"}),
        ("/api/apps/{app}/reload/", "post", {"400", "401", "403", "404", "409", "422"}),
        ("/api/apps/{app}/", "get", {"404"}),
        ("/api/reloads/", "get", {"400", "401", "403"}),
    ],
)
def test_errors_are_documented_with_their_codes(schema, path, method, statuses):
    responses = schema["paths"][path][method]["responses"]
    assert statuses <= set(responses)
    for status in statuses:
        body = responses[status]
        assert body["content"]["application/json"]["schema"]["$ref"].endswith("/Error")
        assert re.search(r"Codes: [a-z_]+", body["description"])


def test_only_the_canonical_api_is_described(schema):
    assert all(path.startswith("/api/") for path in schema["paths"])


def test_swagger_ui_uses_local_assets(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "https://" not in html and "http://" not in html
    assets = re.findall(r'(?:src|href)="(/static/drf_spectacular_sidecar/[^"]+)"', html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
    for asset in assets:
        assert client.get(asset).status_code == 200, asset
