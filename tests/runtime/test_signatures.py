"""Every shape of model users bring, loaded and run by a ModelUtil: signatures, dtypes, TF1 sessions."""

from __future__ import annotations

import importlib.util
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tests import modelkit, zoo
from yyai.runtime.errors import InputError, ModelLoadError
from yyai.runtime.model_util import ModelUtil
from yyai.runtime.servable import State
from yyai.runtime.tensors import EncodedImage, Rows

ONES = np.ones((1, *zoo.FACE), np.float32)


def loaded(app: Path) -> ModelUtil:
    util = ModelUtil(app, settle_seconds=0)
    util.load()
    return util


def run(util: ModelUtil, values: dict, *, columnar: bool = True, signature: str | None = None):
    with util.serving() as version:
        chosen = version.signature_named(signature)
        return version.infer(version.prepare(values, signature=chosen, columnar=columnar))


def test_two_heads_are_two_named_outputs(tmp_path):
    util = loaded(zoo.two_heads(tmp_path / "faces" / "heads.keras").parent)
    model = util.current.models[0]
    assert [o.name for o in model.signature.outputs] == ["age", "sex"]
    (named,) = run(util, {"face": np.ones((2, *zoo.FACE), np.float32)})
    np.testing.assert_allclose(named["age"], [[96.0], [96.0]], rtol=1e-5)
    assert named["sex"].shape == (2, 2) and named["sex"][0, 0] > 0.5
    with util.serving() as version:
        (row,) = version.format(version.infer(version.prepare({"face": ONES}, columnar=True)))
    assert row == [
        {
            "name": "heads.keras",
            "outputs": {"age": 96.0, "sex": [pytest.approx(0.98, abs=0.01), pytest.approx(0.02, abs=0.01)]},
        }
    ]


def test_two_inputs_by_name_and_in_rows(tmp_path):
    util = loaded(zoo.two_inputs(tmp_path / "meta" / "m.keras").parent)
    (named,) = run(util, {"image": ONES, "meta": [[1, 2, 3, 4]]})
    np.testing.assert_allclose(named["score"], [[192.0 + 100.0]])
    rows = Rows([ONES[0].tolist()] * 2)
    (named,) = run(util, {"image": rows, "meta": Rows([[0, 0, 0, 0], [1, 1, 1, 1]])}, columnar=False)
    np.testing.assert_allclose(named["score"], [[192.0], [232.0]])
    with pytest.raises(InputError, match="missing input 'meta'"):
        run(util, {"image": ONES})


def test_any_height_and_width_takes_each_image_at_its_own_size(tmp_path):
    util = loaded(zoo.any_size(tmp_path / "any" / "fcn.keras").parent)
    images = []
    for value, (w, h) in zip((51, 102, 255), ((4, 3), (9, 7), (4, 3))):
        image = np.full((h, w, 3), value, np.uint8)
        images.append(EncodedImage(modelkit_png(image)))
    (named,) = run(util, {"image": Rows(images)}, columnar=False)
    np.testing.assert_allclose(named["brightness"].ravel(), [0.6, 1.2, 3.0], rtol=1e-5)
    assert util.current.batcher.batches == 2  # two shapes, two batches


def modelkit_png(image: np.ndarray) -> bytes:
    import cv2

    return cv2.imencode(".png", image)[1].tobytes()


def test_int_inputs(tmp_path):
    util = loaded(zoo.tokens(tmp_path / "tok" / "t.keras").parent)
    (named,) = run(util, {"ids": [[1, 2, 3, 4, 5], [9, 9, 9, 9, 9]]})
    np.testing.assert_allclose(named["mean_id"], [[3.0], [9.0]])
    with pytest.raises(InputError, match=r"input 'ids' takes integers \(int32\), got floats"):
        run(util, {"ids": [[1.5, 2, 3, 4, 5]]})


def test_string_inputs_and_outputs_and_a_second_signature(tmp_path):
    util = loaded(zoo.text(tmp_path / "text" / "strings").parent)
    model = util.current.models[0]
    assert (model.fmt, sorted(model.signatures)) == ("saved_model", ["serving_default", "words"])
    (named,) = run(util, {"text": ["ab c", "héllo"]})
    assert named["length"].tolist() == [4, 6] and named["upper"].tolist() == [b"AB C", "HéLLO".encode()]
    (named,) = run(util, {"text": ["one two three"]}, signature="words")
    assert named["words"].tolist() == [3]
    with pytest.raises(InputError, match="no signature 'nope'"):
        run(util, {"text": ["x"]}, signature="nope")


def test_tf1_graph_without_batch_dimension_runs_in_its_own_session(tmp_path):
    app = tmp_path / "detector"
    zoo.ready(zoo.tf1_detector(app / "1", weight=2.0))
    (app / "app.toml").write_text('signature = "detected_model"\n')
    util = loaded(app)
    model = util.current.models[0]
    assert (model.name, model.fmt, model.signature.name, model.signature.batched) == (
        "detector",
        "tf1_session",
        "detected_model",
        False,
    )
    assert [(o.name, o.dtype, o.shape) for o in model.signature.outputs] == [
        ("boxes", "float32", (1, 4)),
        ("classes", "int64", (1,)),
        ("score", "float32", ()),
    ]
    (named,) = run(util, {"image": ONES[0]})  # columnar, unbatched: the whole tensor is one row
    assert named["score"].tolist() == [384.0] and named["classes"].tolist() == [[7]]
    (named,) = run(util, {"image": Rows([ONES[0], ONES[0] * 2])}, columnar=False)  # rows: one run each
    assert named["score"].tolist() == [384.0, 768.0]
    assert util.current.batcher.batches == 3
    session = model.runners["detected_model"].__closure__
    sessions = [c.cell_contents for c in session if isinstance(c.cell_contents, tf.compat.v1.Session)]
    assert sessions and sessions[0].graph is not tf.compat.v1.get_default_graph()
    old = util.current
    zoo.ready(zoo.tf1_detector(app / "2", weight=3.0))
    util.reload()
    assert old.state is State.END and sessions[0]._closed  # the old version's session is closed
    (named,) = run(util, {"image": ONES[0]})
    assert named["score"].tolist() == [576.0]


def test_tf1_signature_must_be_named_when_it_is_not_serving_default(tmp_path):
    app = tmp_path / "detector"
    zoo.tf1_detector(app / "1")
    (app / "app.toml").write_text('signature = "other"\n')
    with pytest.raises(ModelLoadError, match="no signature 'other' \\(signatures: detected_model\\)"):
        ModelUtil(app, settle_seconds=0).load()


def test_a_failed_version_closes_the_sessions_it_opened(tmp_path):
    app = tmp_path / "detector"
    zoo.tf1_detector(app / "a")
    modelkit.regressor(app / "b.h5", weight=1.0)  # other inputs: the version fails after a loaded
    opened = []
    real = tf.compat.v1.Session.__init__

    def init(self, *args, **kwargs):
        opened.append(self)
        real(self, *args, **kwargs)

    tf.compat.v1.Session.__init__ = init
    try:
        with pytest.raises(ModelLoadError, match="share their inputs"):
            ModelUtil(app, settle_seconds=0).load()
    finally:
        tf.compat.v1.Session.__init__ = real
    assert len(opened) == 1 and opened[0]._closed


def test_concurrent_requests_of_mixed_shapes_share_one_batcher(tmp_path):
    util = loaded(zoo.any_size(tmp_path / "any" / "fcn.keras").parent)
    sizes = [(3, 3), (5, 2), (8, 8)]
    errors, seen = [], []

    def client(i):
        w, h = sizes[i % 3]
        value = 10 + i
        expected = 3 * value / 255.0
        try:
            for _ in range(10):
                (named,) = run(
                    util,
                    {"image": Rows([EncodedImage(modelkit_png(np.full((h, w, 3), value, np.uint8)))])},
                    columnar=False,
                )
                assert abs(float(named["brightness"][0, 0]) - expected) < 1e-4
                seen.append(i)
        except Exception as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and len(seen) == 120
    assert util.current.batcher.rows == 120 + 0  # every row ran, in batches of one shape each


def basic_pitch_model() -> Path | None:
    spec = importlib.util.find_spec("basic_pitch")  # located, never imported (its imports need old packages)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "saved_models" / "icassp_2022" / "nmp"


def test_a_real_saved_model_the_tf2_object_api_cannot_restore(tmp_path):
    """basic-pitch ships a Keras 2 model saved with its optimizer: tf.saved_model.load fails on it
    ("'_UserObject' object has no attribute 'add_slot'"), TF Serving serves it; so does this server."""
    source = basic_pitch_model()
    assert source is not None and (source / "saved_model.pb").is_file(), "make install installs basic-pitch"
    with pytest.raises(AttributeError, match="add_slot"):
        tf.saved_model.load(str(source))
    app = tmp_path / "notes"
    shutil.copytree(source, app / "1", ignore=shutil.ignore_patterns("*.onnx", "*.tflite", "*.mlpackage"))
    zoo.ready(app / "1")
    util = loaded(app)
    model = util.current.models[0]
    assert (model.fmt, model.signature.batched) == ("tf1_session", True)
    assert [(s.name, s.shape) for s in model.signature.inputs] == [("input_2", (43844, 1))]
    audio = np.random.default_rng(0).uniform(-0.1, 0.1, (2, 43844, 1)).astype(np.float32)
    (named,) = run(util, {"input_2": audio})
    assert {k: v.shape for k, v in named.items()} == {
        "contour": (2, 172, 264),
        "note": (2, 172, 88),
        "onset": (2, 172, 88),
    }
    assert np.all((named["note"] >= 0) & (named["note"] <= 1)) and named["note"].std() > 0
