"""ModelUtil: load, reload, failures that keep the old version, isolation, races."""

import shutil
import threading

import numpy as np
import pytest

from tests import modelkit
from yyai.runtime.errors import AppNotAvailable, BadTensor, ReloadInProgress, VersionNotFound
from yyai.runtime.model_util import ModelUtil
from yyai.runtime.servable import State

BATCH = np.random.default_rng(0).random((4, *modelkit.SHAPE), dtype=np.float32)


def outputs(util, batch=BATCH):
    version, outs = modelkit.predict(util, batch)
    return version, [o.ravel().tolist() for o in outs]


def expected(*weights, batch=BATCH):
    return [modelkit.expected_regression(w, batch).ravel().tolist() for w in weights]


def assert_outputs(util, *weights):
    _, got = outputs(util)
    np.testing.assert_allclose(got, expected(*weights), rtol=1e-5)


def test_not_loaded_is_unavailable(make_app):
    util = ModelUtil(make_app())
    assert util.state is State.START
    with pytest.raises(AppNotAvailable):
        modelkit.predict(util, BATCH)


def test_load_predict_and_status(make_app):
    util = ModelUtil(make_app(models={"b.h5": 2.0, "a.keras": 1.0}))
    report = util.load()
    assert report.old_version is None and [m["name"] for m in report.models] == ["a.keras", "b.h5"]
    version, _ = outputs(util)
    assert version == report.new_version
    assert_outputs(util, 1.0, 2.0)  # file-name order
    status = util.status()
    assert status["state"] == "AVAILABLE" and status["version"] == version and status["last_error"] is None
    assert status["versions"] == [
        {"version": version, "state": "AVAILABLE", "complete": True, "reason": "", "files": ["a.keras", "b.h5"]}
    ]


def test_format_gives_one_result_per_model_per_row(make_app):
    util = ModelUtil(make_app(models={"a.h5": 1.0, "b.h5": 2.0}, manifest="[output]\ndecimals = 1"))
    util.load()
    with util.serving() as version:
        rows = version.format(version.infer(version.prepare({"x": BATCH[:2]}, columnar=True)))
    assert [[r["name"] for r in row] for row in rows] == [["a.h5", "b.h5"]] * 2
    assert rows[0][1]["value"] == round(float(2 * BATCH[0].sum()), 1)


def test_reload_picks_up_new_weights_and_file_set(make_app):
    app = make_app(models={"a.h5": 1.0})
    util = ModelUtil(app)
    first = util.load().new_version
    modelkit.regressor(app / "a.h5", weight=3.0)
    report = util.reload()
    assert (report.old_version, report.new_version != first) == (first, True)
    assert_outputs(util, 3.0)
    modelkit.regressor(app / "b.keras", weight=5.0)
    util.reload()
    assert_outputs(util, 3.0, 5.0)
    (app / "a.h5").unlink()
    util.reload()
    assert_outputs(util, 5.0)


@pytest.mark.parametrize("damage", ["random", "truncated"])
def test_corrupt_file_keeps_old_version_serving(make_app, damage):
    app = make_app(models={"a.h5": 1.0})
    util = ModelUtil(app)
    good = util.load().new_version
    if damage == "random":
        modelkit.random_bytes(app / "a.h5")
    else:
        modelkit.truncate(app / "a.h5")
    with pytest.raises(Exception) as info:
        util.reload()
    assert info.value.code == "model_load_failed"
    version, _ = outputs(util)
    assert version == good
    assert_outputs(util, 1.0)
    status = util.status()
    assert status["state"] == "AVAILABLE" and status["version"] == good
    assert "a.h5" in status["last_error"]
    assert [(v["version"] == good, v["state"]) for v in status["versions"]] == [(False, "FAILED"), (True, "AVAILABLE")]


def test_corrupt_app_at_startup_is_failed_not_available(make_app):
    app = make_app()
    modelkit.random_bytes(app / "m.h5")
    util = ModelUtil(app)
    with pytest.raises(Exception):
        util.load()
    assert util.state is State.FAILED
    with pytest.raises(AppNotAvailable, match="its last load failed"):
        modelkit.predict(util, BATCH)
    error = util.status()["last_error"]
    assert error.startswith("app/") and "/m.h5: " in error and str(app) not in error  # store-relative


def test_incompatible_input_shapes_refused(make_app):
    app = make_app(models={"a.h5": 1.0})
    modelkit.regressor(app / "b.h5", weight=1.0, input_shape=(4, 4, 1))
    with pytest.raises(Exception, match="share their inputs"):
        ModelUtil(app).load()


def test_manifest_size_must_match_model(make_app):
    app = make_app(manifest="[input]\nsize = [9, 8]")
    with pytest.raises(Exception, match="does not match"):
        ModelUtil(app).load()


def test_wrong_shape_refused_before_batching(make_app):
    util = ModelUtil(make_app())
    util.load()
    with pytest.raises(BadTensor, match=r"takes shape \[8, 8, 1\] per row, got \[4, 4, 1\]"):
        modelkit.predict(util, np.zeros((1, 4, 4, 1), np.float32))


def test_two_apps_isolated(make_app):
    a, b = ModelUtil(make_app("a", {"m.h5": 1.0})), ModelUtil(make_app("b", {"m.h5": 2.0}))
    a.load(), b.load()
    before = outputs(b)
    modelkit.regressor(a.app_dir / "m.h5", weight=7.0)
    a.reload()
    assert outputs(b) == before
    modelkit.random_bytes(a.app_dir / "m.h5")
    with pytest.raises(Exception):
        a.reload()
    assert outputs(b) == before
    assert_outputs(a, 7.0)


def numbered_app(make_app, versions):
    app = make_app(models={})
    for number, weights in versions.items():
        for i, w in enumerate(weights):
            modelkit.regressor(app / str(number) / f"m{i}.h5", weight=w)
        (app / str(number) / "READY").touch()
    return app


def test_pin_and_unpin(make_app):
    util = ModelUtil(numbered_app(make_app, {1: [1.0], 2: [2.0]}))
    assert util.load().new_version == "2"
    util.reload(version=1)
    assert (util.pinned, util.current.id) == ("1", "1")
    util.reload()  # keeps the pin
    assert util.current.id == "1"
    util.reload(version="latest")
    assert (util.pinned, util.current.id) == (None, "2")
    with pytest.raises(VersionNotFound):
        util.reload(version=7)
    assert util.current.id == "2"


def test_half_copied_version_never_served(make_app):
    app = numbered_app(make_app, {1: [1.0]})
    util = ModelUtil(app, settle_seconds=60)
    util.load()
    modelkit.regressor(app / "2" / "m0.h5", weight=2.0)  # no READY, fresh mtime
    util.reload()
    assert util.current.id == "1"
    (app / "2" / "READY").touch()
    util.reload()
    assert util.current.id == "2"


def test_reload_without_wait_refuses_concurrent_reload(make_app):
    util = ModelUtil(make_app())
    util._reload_lock.acquire()
    try:
        with pytest.raises(ReloadInProgress):
            util.reload(wait=False)
    finally:
        util._reload_lock.release()


def test_old_version_ends_after_inflight_request(make_app):
    app = numbered_app(make_app, {1: [1.0], 2: [2.0]})
    util = ModelUtil(app)
    util.reload(version=1)
    with util.serving() as old:
        util.reload(version=2)
        assert old.state is State.UNLOADING
        (named,) = old.infer(old.prepare({"x": BATCH}, columnar=True))
        np.testing.assert_allclose(named[modelkit.OUTPUT].ravel(), expected(1.0)[0], rtol=1e-5)
    assert old.state is State.END


def test_predict_during_reloads_never_fails_or_mixes(make_app):
    """8 threads predict continuously while 20 reloads alternate two versions."""
    util = ModelUtil(numbered_app(make_app, {1: [1.0, 10.0], 2: [2.0, 20.0]}))
    util.load()
    answers = {"1": expected(1.0, 10.0), "2": expected(2.0, 20.0)}
    stop, errors, seen = threading.Event(), [], {"1": 0, "2": 0}
    lock = threading.Lock()

    def client():
        while not stop.is_set():
            try:
                version, got = outputs(util)
                np.testing.assert_allclose(got, answers[version], rtol=1e-5)
                with lock:
                    seen[version] += 1
            except Exception as exc:  # any failure, including a mixed response, is recorded
                errors.append(repr(exc))

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    try:
        for i in range(20):
            util.reload(version=1 + i % 2)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    assert seen["1"] > 0 and seen["2"] > 0


def test_flat_copy_then_reload_while_serving(make_app):
    app = make_app(models={"m.h5": 1.0})
    staged = app.parent / "staged.h5"
    modelkit.regressor(staged, weight=4.0)
    util = ModelUtil(app)
    util.load()
    shutil.copy(staged, app / "m.h5")
    util.reload()
    assert_outputs(util, 4.0)


def test_a_rollback_to_a_number_that_is_only_loose_files_says_how_to_make_it_one(make_app):
    app = make_app(models={"m.h5": 1.0})
    modelkit.regressor(app / "2" / "m.h5", weight=2.0)
    (app / "2" / "READY").touch()
    util = ModelUtil(app)
    assert util.reload().new_version == "2"
    with pytest.raises(VersionNotFound, match=r"loose files \(m.h5\) are ignored .* move them into one \(1/\)"):
        util.reload(1)


def test_only_a_softmax_is_guessed_a_classification_raw_logits_are_plain_values(tmp_path):
    app = tmp_path / "store" / "guess"
    modelkit.classifier(app / "a_probs.keras", classes=5)
    modelkit.classifier(app / "b_logits.keras", classes=5, activation=None)
    util = ModelUtil(app)
    util.load()
    with util.serving() as version:
        probs, logits = version.format(version.infer(version.prepare({"x": BATCH[:1]}, columnar=True)))[0]
    assert probs["label"] in {"0", "1", "2", "3", "4"} and probs["score"] == max(probs["value"])
    assert sum(probs["value"]) == pytest.approx(1, abs=1e-5)
    assert set(logits) == {"name", "value"} and len(logits["value"]) == 5  # no label or score made up
    assert round(sum(logits["value"]), 3) != 1
