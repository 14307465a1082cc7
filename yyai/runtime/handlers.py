"""An app's handler: Python hooks around its models, loaded only from the operator's disk.

``app.toml`` names a file, ``handler = "handler.py"`` (or ``"handler.py:ClassName"``),
found in the version folder, else in the app folder; a version that came from an
upload is never searched (:data:`~yyai.runtime.publish.UPLOADED_MARKER`). The file
defines the class named, else exactly one class with a hook. Its hooks, all optional:

* ``setup(self, context)``: once per version, before the version serves;
* ``preprocess(self, request, context) -> {input name: value}``: per request, the
  named inputs of the app's models (columnar: rows first). They run in the app's
  batcher; an app without models hands this dict to ``postprocess`` unchanged;
* ``postprocess(self, outputs, request, context) -> JSON-able``: per request;
  ``outputs`` is ``{model file name: {output name: array, rows first}}``. A dict
  is merged into the answer (after ``app``, ``version`` and ``demo``, which it
  cannot replace); any other value becomes the answer's ``result``.

Errors: an import or ``setup`` error fails the version's load
(:class:`HandlerLoadError`, the old version keeps serving). In a hook, a
:class:`~yyai.runtime.errors.ServingError` (``InputError`` for a bad request) is
the answer as it is; any other exception is :class:`HandlerFailed` (500, naming
the app and the hook), its trace logged. Hooks run in the request's thread, never
on an event loop, and concurrently: they must be thread-safe. One instance of the
class serves a version, so ``setup`` may keep state on ``self``.
"""

from __future__ import annotations

import contextvars
import inspect
import itertools
import logging
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from . import preprocess
from .errors import HandlerFailed, HandlerLoadError, ServingError
from .jsonable import jsonable
from .limits import RequestLimits
from .manifest import HANDLER, AppSpec
from .opened import reason_of

log = logging.getLogger(__name__)

HOOKS = {"setup": ("context",), "preprocess": ("request", "context"), "postprocess": ("outputs", "request", "context")}
MAX_HANDLER_BYTES = 1 << 20
MAX_CALL_DEPTH = 8  # apps calling apps (context.predict), counting the first

AppCaller = Callable[..., dict]  # (app, *, images, instances, inputs) -> the app's predict answer
_calling: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("yyai_handler_calls", default=())
_module_numbers = itertools.count(1)


@dataclass
class HandlerSettings:
    """Whether this server runs handlers at all, how their ``context.predict`` reaches other apps
    (installed by the server once it has a data plane; None until then), and the pixel limit of
    ``context.decode_image``."""

    allowed: bool = True
    call_app: AppCaller | None = None
    max_pixels: int = RequestLimits.max_pixels


@dataclass(frozen=True)
class HandlerRequest:
    """A predict request as the hooks see it: what the caller sent, in one of three forms.

    ``images``: image files (bytes), one per row; ``instances``: rows (JSON values);
    ``inputs``: named tensors (columnar). The others are None.
    """

    app: str
    images: list[bytes] | None = None
    instances: Any = None
    inputs: Any = None


@dataclass
class Context:
    """What a handler sees of its app, and its way to call other apps."""

    app: str
    version: str
    manifest: AppSpec
    folder: Path  # the version's folder (a snapshot for the flat layout)
    app_folder: Path
    settings: HandlerSettings = field(repr=False, default_factory=HandlerSettings)

    @property
    def config(self) -> dict[str, Any]:
        """The handler's own tables of ``app.toml`` (``[faces]`` -> ``config["faces"]``)."""
        return self.manifest.handler_config

    def path(self, name: str) -> Path:
        """The file ``name`` of the version folder, else of the app folder; ValueError if it leaves them."""
        for root in (self.folder, self.app_folder):
            candidate = (root / name).resolve()
            if not candidate.is_relative_to(root.resolve()):
                raise ValueError(f"'{name}' is not inside the app's folders")
            if candidate.exists():
                return candidate
        return (self.folder / name).resolve()

    def decode_image(self, data: bytes) -> np.ndarray:
        """An image file as a ``(H, W, 3)`` uint8 array in OpenCV's BGR order; InputError (an answer of 4xx)
        when it is not an image or has more pixels than the server allows, checked before decoding."""
        return preprocess.decode_image(data, max_pixels=self.settings.max_pixels)

    def predict(self, app: str, inputs: Any = None, *, images: list | None = None, instances: Any = None) -> dict:
        """Another app's answer, exactly as ``POST /api/apps/<app>/predict/`` gives it for a batch (the
        ``predictions`` form: one result list per row), from its current version through the data plane:
        batched with its traffic, counted in its metrics. ``images`` are files (bytes) or uint8 arrays in
        OpenCV's BGR order, sent as lossless PNG. RuntimeError when the call would go round in a circle."""
        chain = _calling.get() or (self.app,)
        if app in chain or len(chain) >= MAX_CALL_DEPTH:
            raise RuntimeError(
                f"context.predict: {' -> '.join((*chain, app))} would call apps in a circle or "
                f"deeper than {MAX_CALL_DEPTH}"
            )
        if self.settings.call_app is None:
            raise RuntimeError("context.predict: this process serves no data plane (a tool, not the server)")
        encoded = None if images is None else [_encoded(image) for image in images]
        token = _calling.set((*chain, app))
        try:
            return self.settings.call_app(app, images=encoded, instances=instances, inputs=inputs)
        finally:
            _calling.reset(token)


class LoadedHandler:
    """One version's handler instance and its context. :meth:`close` when the version retires."""

    def __init__(self, *, file: str, instance: Any, module: str, context: Context):
        self.file = file
        self.instance = instance
        self.module = module
        self.context = context
        self.hooks = frozenset(h for h in HOOKS if callable(getattr(instance, h, None)))

    def has(self, hook: str) -> bool:
        return hook in self.hooks

    def preprocess(self, request: HandlerRequest) -> dict[str, Any]:
        values = self._call("preprocess", request, self.context)
        if not isinstance(values, dict) or not all(isinstance(name, str) for name in values):
            self._fail("preprocess", f"returned {type(values).__name__}, not a dict of named inputs")
        return values

    def postprocess(self, outputs: dict[str, Any], request: HandlerRequest) -> Any:
        answer = self._call("postprocess", outputs, request, self.context)
        try:
            return jsonable(answer)
        except ValueError as exc:
            self._fail("postprocess", f"returned a value that is not JSON: {exc}")

    def describe(self) -> dict:
        return {"file": self.file, "hooks": sorted(self.hooks)}

    def close(self) -> None:
        sys.modules.pop(self.module, None)

    def _call(self, hook: str, *args) -> Any:
        try:
            return getattr(self.instance, hook)(*args)
        except ServingError:
            raise
        except (Exception, SystemExit):  # a handler calling sys.exit() fails its request, not the worker
            log.exception("app %s: handler %s failed in %s", self.context.app, self.file, hook)
            raise HandlerFailed(self.context.app, hook) from None

    def _fail(self, hook: str, reason: str):
        log.error("app %s: handler %s: %s %s", self.context.app, self.file, hook, reason)
        raise HandlerFailed(self.context.app, hook)


def load_handler(
    spec: AppSpec, *, version: str, folders: list[Path], app_folder: Path, settings: HandlerSettings
) -> LoadedHandler:
    """Import the handler ``spec`` names from the first of ``folders`` that has it, and run its ``setup``.

    HandlerLoadError (naming the file) when handlers are off, the file is missing
    or too large, the import fails, the class is missing or ambiguous, a hook
    takes the wrong arguments, or ``setup`` raises.
    """
    match = HANDLER.match(spec.handler or "")
    if match is None:
        raise HandlerLoadError(f"app '{spec.name}': handler '{spec.handler}' is not a file name")
    if not settings.allowed:
        raise HandlerLoadError(
            f"app '{spec.name}' names a handler ({match['file']}) but this server runs no "
            f"handlers (YYAI_ALLOW_HANDLERS is off)"
        )
    path = next((folder / match["file"] for folder in folders if (folder / match["file"]).is_file()), None)
    if path is None:
        raise HandlerLoadError(
            f"app '{spec.name}': its handler {match['file']} is not in the version folder or the app folder"
        )
    source = path.read_bytes()[: MAX_HANDLER_BYTES + 1]
    if len(source) > MAX_HANDLER_BYTES:
        raise HandlerLoadError(f"{path}: larger than {MAX_HANDLER_BYTES} bytes")
    name = f"yyai_handler_{spec.name.replace('-', '_')}_{next(_module_numbers)}"
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module  # dataclasses and pickling look classes up there
    try:
        try:
            exec(compile(source, str(path), "exec"), module.__dict__)  # no bytecode written into the store
        except (Exception, SystemExit) as exc:
            log.exception("app %s: cannot import handler %s", spec.name, path)
            line = f" (line {exc.lineno})" if isinstance(exc, SyntaxError) and exc.lineno else ""
            raise HandlerLoadError(f"{path}: cannot import it{line}: {type(exc).__name__}: {reason_of(exc)}") from None
        cls = _handler_class(module, match["cls"], path)
        _check_hooks(cls, path)
        try:
            instance = cls()
        except (Exception, SystemExit) as exc:
            raise HandlerLoadError(f"{path}: {cls.__name__}() failed: {type(exc).__name__}: {reason_of(exc)}") from None
        context = Context(
            app=spec.name, version=version, manifest=spec, folder=folders[0], app_folder=app_folder, settings=settings
        )
        handler = LoadedHandler(file=path.name, instance=instance, module=name, context=context)
        if handler.has("setup"):
            try:
                instance.setup(context)
            except (Exception, SystemExit) as exc:
                log.exception("app %s: handler %s failed in setup", spec.name, path)
                raise HandlerLoadError(f"{path}: setup failed: {type(exc).__name__}: {reason_of(exc)}") from None
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return handler


def _handler_class(module: types.ModuleType, wanted: str | None, path: Path) -> type:
    if wanted is not None:
        cls = getattr(module, wanted, None)
        if not isinstance(cls, type):
            raise HandlerLoadError(f"{path}: defines no class {wanted}")
        return cls
    own = [
        value
        for value in vars(module).values()
        if isinstance(value, type) and value.__module__ == module.__name__ and any(hasattr(value, h) for h in HOOKS)
    ]
    if len(own) != 1:
        found = ", ".join(sorted(c.__name__ for c in own)) or "none"
        raise HandlerLoadError(
            f"{path}: must define exactly one class with a hook ({', '.join(HOOKS)}); found "
            f'{found}: name one as handler = "{path.name}:ClassName"'
        )
    return own[0]


def _check_hooks(cls: type, path: Path) -> None:
    """Each hook the class defines is a method taking exactly the documented arguments."""
    for hook, params in HOOKS.items():
        method = getattr(cls, hook, None)
        if method is None:
            continue
        try:
            inspect.signature(method).bind(None, *params)
        except (TypeError, ValueError):
            raise HandlerLoadError(f"{path}: {cls.__name__}.{hook} must take (self, {', '.join(params)})") from None


def _encoded(image: Any) -> bytes:
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image)
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim in (2, 3):
        ok, png = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if ok:
            return png.tobytes()
    raise ValueError(
        "context.predict: each image must be bytes (an image file) or a uint8 array (H, W[, C]), "
        f"got {type(image).__name__}"
    )
