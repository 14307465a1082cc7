"""Write an app's serving version in TF Serving's layout: ``<out>/<app>/<N>/saved_model.pb``.

The SavedModel's ``serving_default`` signature is this server's ``<app>``
servable: the app's inputs (names, dtypes, shapes) and its outputs under the
names the data plane serves them, so TF Serving answers
``/v1/models/<app>:predict`` exactly as this server does. An app whose one
model is already a SavedModel is copied as it is, every signature included.
Preprocessing of images (resize, color, scale) is not part of the graph: send
tensors, as with any TF Serving model.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import tensorflow as tf

from yyai.runtime.errors import ModelLoadError, NoModel
from yyai.runtime.loader import LoadedModel
from yyai.runtime.manifest import load_manifest
from yyai.runtime.repository import AppSource
from yyai.runtime.repository.local import LocalApp
from yyai.runtime.servable import ServingVersion
from yyai.runtime.signature import SERVING_DEFAULT
from yyai.runtime.source import choose_version
from yyai.runtime.version_models import load_version_models, manifest_for
from yyai.services.addressing import Address, output_map


class _AppModule(tf.Module):
    """Every model of one version behind one signature; keeps the models (and their variables) tracked."""

    def __init__(self, version: ServingVersion):
        super().__init__()
        signature = version.signature
        self.keep = [model.keep for model in version.models]
        self._calls = [_graph_call(model) for model in version.models]
        self._names = output_map(version, Address(name=version.spec.name, app=version.spec.name), signature)
        specs = {
            s.name: tf.TensorSpec(
                ((None,) if signature.batched else ()) + tuple(s.shape or ()),
                tf.string if s.dtype == "string" else s.dtype,
                name=s.name,
            )
            for s in signature.inputs
        }
        self.serve = tf.function(self._serve, input_signature=[specs])

    def _serve(self, inputs):
        results = [call(inputs) for call in self._calls]
        return {name: results[index][output] for name, index, output in self._names}


def _graph_call(model: LoadedModel):
    """A function of named input tensors -> named outputs, usable inside another graph."""
    if model.fmt == "keras":
        names = model.signature.output_names
        single = model.signature.inputs[0].name if len(model.signature.inputs) == 1 else None
        return lambda inputs: dict(
            zip(names, tf.nest.flatten(model.keep(inputs[single] if single else inputs, training=False)))
        )
    if model.fmt == "saved_model":
        function = model.keep.signatures[model.signature.name]
        return lambda inputs: function(**inputs)
    raise ModelLoadError(
        model.path,
        "a TF1 graph cannot be combined with other models into one SavedModel; "
        "export an app whose only model it is (it is copied as it is)",
    )


def export_app(
    app: AppSource | Path,
    out_dir: Path,
    *,
    version: str | None = None,
    number: int | None = None,
    settle_seconds: float = 0.0,
    force: bool = False,
) -> Path:
    """Export ``version`` of ``app`` (an app folder, or any repository's app; default: the version the app's
    policy serves) to ``out_dir/<app>/<number>``.

    ``number`` defaults to the version's folder number (1 for the flat layout).
    The folder appears in one rename, so a TF Serving polling ``out_dir`` never
    sees half of it. Returns the folder written.
    """
    source = app if isinstance(app, AppSource) else LocalApp(Path(app))
    app_dir = source.folder
    base = load_manifest(app_dir)
    candidate = choose_version(source.candidates(settle_seconds=settle_seconds), policy=base.versions, pinned=version)
    candidate = source.fetch(candidate.id) if candidate.numbered else candidate
    if not candidate.files:
        raise NoModel(
            f"app '{app_dir.name}' has only a handler: there is no model to export (its hooks are Python, "
            f"which a SavedModel cannot carry)"
        )
    number = number if number is not None else (candidate.number or 1)
    target = Path(out_dir) / app_dir.name / str(number)
    if target.exists() and not force:
        raise FileExistsError(f"{target} exists; pass force to replace it")
    staging = target.with_name(f".tmp-{number}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    files = [Path(f) for f in candidate.files]
    if len(files) == 1 and files[0].is_dir():
        shutil.copytree(files[0], staging)
    else:
        spec = manifest_for(app_dir, Path(candidate.path), base=base)
        models = load_version_models(spec, candidate)
        try:
            module = _AppModule(ServingVersion(spec, candidate, models, 0.0))
            tf.saved_model.save(module, str(staging), signatures={SERVING_DEFAULT: module.serve})
        finally:
            for model in models:
                model.close()
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)
    return target
