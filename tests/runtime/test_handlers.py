"""Handlers in the runtime: where the file is found, what a hook gets, and every way loading one fails."""

import logging
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests import modelkit
from yyai.runtime.errors import HandlerFailed, HandlerLoadError, InputError, ManifestError
from yyai.runtime.handlers import Context, HandlerRequest, HandlerSettings
from yyai.runtime.jsonable import jsonable
from yyai.runtime.manifest import parse_manifest
from yyai.runtime.model_util import ModelUtil
from yyai.runtime.publish import UPLOADED_MARKER
from yyai.runtime.snapshots import SNAPSHOTS

RECORDING = """
import threading

class Recorder:
    setups = []

    def setup(self, context):
        Recorder.setups.append((context.app, context.version, context.config, context.folder))
        self.offset = context.config["extra"]["offset"]
        self.tag = {tag!r}

    def postprocess(self, outputs, request, context):
        return {{"tag": self.tag, "offset": self.offset}}
"""

MANIFEST = 'handler = "handler.py"\n[extra]\noffset = 7\n'


def write_handler(folder: Path, source: str, name: str = "handler.py") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return path


@pytest.fixture
def app_dir(make_app):
    """A flat app with one regressor, naming handler.py (written by each test)."""
    return make_app("hooked", manifest=MANIFEST)


def load(app_dir: Path, **settings) -> ModelUtil:
    util = ModelUtil(app_dir, settle_seconds=0, handlers=HandlerSettings(**settings))
    util.load()
    return util


def test_setup_runs_once_per_version_with_the_apps_context(app_dir):
    write_handler(app_dir, RECORDING.format(tag="one"))
    util = load(app_dir)
    with util.serving() as version:
        handler = version.handler
        assert handler.hooks == {"setup", "postprocess"}
        app, version_id, config, folder = handler.instance.setups[-1]
        assert (app, version_id, config) == ("hooked", version.id, {"extra": {"offset": 7}})
        assert folder == app_dir / SNAPSHOTS / version.id  # the frozen copy, not the live folder
        assert (folder / "handler.py").read_text() == (app_dir / "handler.py").read_text()
        assert handler.postprocess({}, HandlerRequest(app="hooked")) == {"tag": "one", "offset": 7}
        assert len(handler.instance.setups) == 1
    assert util.status()["handler"] == {"file": "handler.py", "hooks": ["postprocess", "setup"]}
    assert not list(app_dir.rglob("__pycache__"))  # the handler is compiled in memory, never into the store


def test_a_changed_handler_is_a_new_version_and_the_old_one_is_unloaded(app_dir):
    write_handler(app_dir, RECORDING.format(tag="one"))
    util = load(app_dir)
    with util.serving() as old:
        old_module = old.handler.module
        held = old
    write_handler(app_dir, RECORDING.format(tag="two"))
    report = util.reload()
    assert report.old_version == held.id and report.new_version != held.id
    with util.serving() as new:
        assert new.handler.postprocess({}, HandlerRequest(app="hooked"))["tag"] == "two"
    assert held.state.value == "END" and old_module not in sys.modules
    assert util.reload(held.id).new_version == held.id  # a rollback brings back the old code with the old weights
    with util.serving() as back:
        assert back.handler.postprocess({}, HandlerRequest(app="hooked"))["tag"] == "one"


def test_a_version_folders_handler_wins_and_an_uploaded_folder_is_never_searched(tmp_path):
    app = tmp_path / "numbered"
    (app / "app.toml").parent.mkdir(parents=True)
    (app / "app.toml").write_text(MANIFEST)
    write_handler(app, RECORDING.format(tag="app folder"))
    modelkit.regressor(app / "1" / "m.h5", weight=1.0)
    write_handler(app / "1", RECORDING.format(tag="version folder"))
    util = load(app)
    with util.serving() as version:
        assert version.handler.postprocess({}, HandlerRequest(app="numbered"))["tag"] == "version folder"
    (app / "1" / UPLOADED_MARKER).touch()  # a folder an upload wrote: its handler.py cannot have come from us
    util.reload()
    with util.serving() as version:
        assert version.handler.postprocess({}, HandlerRequest(app="numbered"))["tag"] == "app folder"


def test_an_app_of_only_a_handler_serves_and_another_process_loads_its_snapshot(tmp_path):
    app = tmp_path / "store" / "only"
    app.mkdir(parents=True)
    (app / "app.toml").write_text(MANIFEST)
    write_handler(app, RECORDING.format(tag="alone"))
    util = load(app)
    with util.serving() as version:
        assert version.models == () and version.signature is None and version.image_input is None
        leader = version.id
    follower = ModelUtil(app, settle_seconds=0)
    assert follower.follow(leader, pinned=None).new_version == leader


@pytest.mark.parametrize(
    "source, manifest, reason",
    [
        (
            "class H:\n    def postprocess(self, outputs, request, context):\n        return 1 +\n",
            MANIFEST,
            "cannot import it (line 3): SyntaxError",
        ),
        ("import no_such_module_anywhere\n", MANIFEST, "ModuleNotFoundError"),
        ("import sys\nsys.exit(3)\n", MANIFEST, "cannot import it: SystemExit"),
        ("X = 1\n", MANIFEST, "must define exactly one class with a hook"),
        (
            "class A:\n    def setup(self, context): pass\nclass B:\n    def setup(self, context): pass\n",
            MANIFEST,
            "found A, B",
        ),
        (
            "class A:\n    def setup(self, context): pass\n",
            'handler = "handler.py:Missing"\n',
            "defines no class Missing",
        ),
        (
            "class A:\n    def preprocess(self, request): return {}\n",
            MANIFEST,
            "A.preprocess must take (self, request, context)",
        ),
        (
            "class A:\n    def setup(self, context):\n        raise KeyError('weights')\n",
            MANIFEST,
            "setup failed: KeyError",
        ),
        (
            "class A:\n    def __init__(self):\n        raise OSError('no')\n"
            "    def setup(self, context):\n        pass\n",
            MANIFEST,
            "A() failed: OSError",
        ),
    ],
)
def test_a_handler_that_cannot_load_fails_the_load_and_the_old_version_keeps_serving(
    app_dir, source, manifest, reason, caplog
):
    write_handler(app_dir, RECORDING.format(tag="good"))
    util = load(app_dir)
    serving = util.current
    (app_dir / "app.toml").write_text(manifest if manifest == MANIFEST else manifest + "[extra]\noffset = 1\n")
    write_handler(app_dir, source)
    with caplog.at_level(logging.ERROR), pytest.raises(HandlerLoadError) as failed:
        util.reload()
    assert reason in failed.value.message and "handler.py" in failed.value.message
    assert str(app_dir.parent) not in failed.value.message  # named in the store, not by its absolute path
    assert util.current is serving and util.status()["last_error"] == failed.value.message
    with util.serving() as version:
        assert version.handler.postprocess({}, HandlerRequest(app="hooked"))["tag"] == "good"


def test_a_server_without_handlers_refuses_to_load_one(app_dir):
    write_handler(app_dir, RECORDING.format(tag="x"))
    with pytest.raises(HandlerLoadError, match="YYAI_ALLOW_HANDLERS is off"):
        load(app_dir, allowed=False)


def test_a_missing_handler_file_and_an_app_without_models_or_postprocess_are_refused(tmp_path, app_dir):
    with pytest.raises(HandlerLoadError, match="handler.py is not in the version folder or the app folder"):
        load(app_dir)
    only = tmp_path / "only"
    only.mkdir()
    (only / "app.toml").write_text(MANIFEST)
    write_handler(only, "class P:\n    def setup(self, context):\n        self.offset = 1\n")
    with pytest.raises(HandlerLoadError, match="has no model, so its handler handler.py must define postprocess"):
        load(only)


def test_hook_errors_name_the_app_and_hook_and_log_the_trace(app_dir, caplog):
    write_handler(
        app_dir,
        """
        from yyai.runtime.errors import InputError

        class H:
            def preprocess(self, request, context):
                if request.inputs == "bad":
                    raise InputError("send a face")
                if request.inputs == "list":
                    return [1, 2]
                if request.inputs == "exit":
                    raise SystemExit(1)
                raise ZeroDivisionError("division by zero in my code")

            def postprocess(self, outputs, request, context):
                return {"value": float("nan")}
    """,
    )
    handler = load(app_dir).current.handler
    with caplog.at_level(logging.ERROR), pytest.raises(HandlerFailed) as failed:
        handler.preprocess(HandlerRequest(app="hooked", inputs=1))
    assert (failed.value.app, failed.value.hook) == ("hooked", "preprocess")
    assert "app 'hooked'" in failed.value.message and "preprocess" in failed.value.message
    assert "division by zero" not in failed.value.message  # the caller gets no trace; the log does
    assert "ZeroDivisionError: division by zero in my code" in caplog.text
    with pytest.raises(InputError, match="send a face"):
        handler.preprocess(HandlerRequest(app="hooked", inputs="bad"))
    with pytest.raises(HandlerFailed):
        handler.preprocess(HandlerRequest(app="hooked", inputs="list"))
    with pytest.raises(HandlerFailed):  # sys.exit() in a hook fails that request, never the worker
        handler.preprocess(HandlerRequest(app="hooked", inputs="exit"))
    assert "returned list, not a dict of named inputs" in caplog.text
    with pytest.raises(HandlerFailed, match="postprocess"):
        handler.postprocess({}, HandlerRequest(app="hooked"))
    assert "answer.value is nan" in caplog.text


def test_answers_become_json_or_say_where_they_cannot():
    assert jsonable({"a": np.float32(1.5), "b": np.arange(3), "c": (np.int64(2), None, True)}) == {
        "a": 1.5,
        "b": [0, 1, 2],
        "c": [2, None, True],
    }
    with pytest.raises(ValueError, match=r"answer.x\[1\] is inf"):
        jsonable({"x": [1.0, np.inf]})
    with pytest.raises(ValueError, match="key that is not a string"):
        jsonable({1: 2})
    with pytest.raises(ValueError, match="answer.s is a set"):
        jsonable({"s": {1}})


def test_context_keeps_to_its_folders_and_refuses_circles(tmp_path):
    spec = parse_manifest({"handler": "h.py"}, name="a", source="app.toml")
    calls = []

    def call_app(app, **inputs):
        calls.append(app)
        if app == "b":  # b's handler calls a back
            return inner.predict("a")
        return {"predictions": []}

    context = Context(
        app="a",
        version="1",
        manifest=spec,
        folder=tmp_path / "1",
        app_folder=tmp_path,
        settings=HandlerSettings(call_app=call_app),
    )
    inner = Context(
        app="b",
        version="1",
        manifest=spec,
        folder=tmp_path,
        app_folder=tmp_path,
        settings=HandlerSettings(call_app=call_app),
    )
    (tmp_path / "labels.txt").write_text("x")
    assert context.path("labels.txt") == (tmp_path / "labels.txt").resolve()
    with pytest.raises(ValueError, match="not inside"):
        context.path("../../etc/passwd")
    assert context.predict("c", images=[np.zeros((4, 4, 3), np.uint8)]) == {"predictions": []}
    with pytest.raises(RuntimeError, match="a -> b -> a would call apps in a circle"):
        context.predict("b")
    with pytest.raises(RuntimeError, match="serves no data plane"):
        Context(app="a", version="1", manifest=spec, folder=tmp_path, app_folder=tmp_path).predict("c")
    with pytest.raises(ValueError, match="must be bytes"):
        context.predict("c", images=["not an image"])


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"handler": "../evil.py"}, "must name a Python file of the app"),
        ({"handler": "handler.sh"}, "must name a Python file of the app"),
        ({"handler": "h.py:1Class"}, "must name a Python file of the app"),
        ({"faces": {"apps": []}}, "key 'faces' is unknown"),  # the handler's own tables need a handler
        ({"handler": "h.py", "stray": 1}, "key 'stray' is unknown"),
    ],
)
def test_the_manifest_checks_the_handler_key(raw, message):
    with pytest.raises(ManifestError, match=message):
        parse_manifest(raw, name="a", source="app.toml")


def test_a_handler_gets_its_own_tables_of_the_manifest():
    spec = parse_manifest(
        {"handler": "h.py:Faces", "faces": {"apps": ["x"]}, "input": {"color": "rgb"}}, name="a", source="app.toml"
    )
    assert (spec.handler, spec.handler_config, spec.input.color) == ("h.py:Faces", {"faces": {"apps": ["x"]}}, "rgb")
