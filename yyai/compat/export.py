"""Write an app's serving version in TF Serving's layout: ``<out>/<app>/<N>/saved_model.pb``.

The SavedModel has one ``serving_default`` signature shaped like this server's
``<app>`` model: one float input ``input`` ``[-1, *shape]`` and one output per
model, named by its stem. So TF Serving answers ``/v1/models/<app>:predict``
exactly as this server does. Preprocessing of images (resize, color, scale) is
not part of the graph: send tensors, as with any TF Serving model.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

import keras
import tensorflow as tf

from yyai.compat.servables import INPUT_NAME, SIGNATURE_NAME, unique_names
from yyai.runtime.errors import ModelLoadError
from yyai.runtime.loader import SERVING_SIGNATURE
from yyai.runtime.manifest import load_manifest
from yyai.runtime.source import choose_version, scan_versions


class _AppModule(tf.Module):
    """Every model of one version behind one signature; keeps the models (and variables) tracked."""

    def __init__(self, models: dict[str, Callable], keep: list, input_shape: tuple[int, ...]):
        super().__init__()
        self._models = models
        self.keep = keep
        spec = tf.TensorSpec((None, *input_shape), tf.float32, name=INPUT_NAME)
        self.serve = tf.function(self._serve, input_signature=[spec])

    def _serve(self, input):  # noqa: A002 - the signature's input name
        return {name: tf.cast(fn(input), tf.float32) for name, fn in self._models.items()}


def _graph_fn(path: Path, *, trust_code: bool) -> tuple[Callable, object, tuple[int, ...]]:
    """(function usable in a graph, the object that owns its variables, input shape without the batch)."""
    if path.is_dir():
        loaded = tf.saved_model.load(str(path))
        signature = loaded.signatures[SERVING_SIGNATURE]
        (in_name, in_spec), = signature.structured_input_signature[1].items()
        (out_name, _), = signature.structured_outputs.items()
        return (lambda x: signature(**{in_name: tf.cast(x, in_spec.dtype)})[out_name],
                loaded, tuple(in_spec.shape[1:]))
    model = keras.models.load_model(path, compile=False, safe_mode=not trust_code)
    return (lambda x: model(x, training=False)), model, tuple(model.inputs[0].shape[1:])


def export_app(app_dir: Path, out_dir: Path, *, version: str | None = None, number: int | None = None,
               settle_seconds: float = 0.0, force: bool = False) -> Path:
    """Export ``version`` (default: the one the app's policy serves) to ``out_dir/<app>/<number>``.

    ``number`` defaults to the version's folder number (1 for the flat layout).
    The folder appears in one rename, so a TF Serving polling ``out_dir`` never
    sees half of it. Returns the folder written.
    """
    app_dir = Path(app_dir)
    spec = load_manifest(app_dir)
    candidate = choose_version(scan_versions(app_dir, settle_seconds=settle_seconds), policy=spec.versions,
                               pinned=version)
    number = number if number is not None else (candidate.number or 1)
    target = Path(out_dir) / app_dir.name / str(number)
    if target.exists() and not force:
        raise FileExistsError(f"{target} exists; pass force to replace it")
    models, keep, shapes = {}, [], set()
    files = [Path(f) for f in candidate.files]
    for name, file in zip(unique_names([f.name for f in files]), files):
        try:
            fn, owner, shape = _graph_fn(file, trust_code=spec.trust_code)
        except Exception as exc:  # keras and TF raise many types for a bad model; all mean "cannot load"
            raise ModelLoadError(file, " ".join(str(exc).split())[:500] or type(exc).__name__) from exc
        models[name] = fn
        keep.append(owner)
        shapes.add(shape)
    if len(shapes) != 1:
        raise ModelLoadError(app_dir, f"the models have different input shapes {sorted(shapes)}")
    module = _AppModule(models, keep, shapes.pop())
    staging = target.with_name(f".tmp-{number}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    tf.saved_model.save(module, str(staging), signatures={SIGNATURE_NAME: module.serve})
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)
    return target
