"""The models of one version: loaded together, checked against each other and against the manifest.

A version serves only when every model loads, and all of them take the same
inputs (names, dtypes, shapes; a one-input model may name its input
differently) and fit the manifest (image input, size, labels). On any failure
the models already loaded are closed.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from . import postprocess
from .errors import HandlerLoadError, ModelLoadError, VersionNotFound
from .handlers import HandlerSettings, LoadedHandler, load_handler
from .limits import DEFAULT_MAX_FILE_BYTES
from .loader import LoadedModel, load_model
from .manifest import MANIFEST_NAME, AppSpec, BatchingSpec, load_manifest
from .publish import UPLOADED_MARKER
from .request import image_input, image_shape
from .source import VersionCandidate
from .warmup import WARMUP_FILE

log = logging.getLogger(__name__)


def manifest_for(
    app_dir: Path, version_dir: Path, *, base: AppSpec, batching_defaults: BatchingSpec | None = None
) -> AppSpec:
    """The manifest a version serves with: its own ``app.toml`` if it has one, else the app's.

    The version policy always comes from the app's manifest (``base``).
    """
    if Path(version_dir) == Path(app_dir) or not (Path(version_dir) / MANIFEST_NAME).is_file():
        return base
    own = load_manifest(version_dir, batching_defaults=batching_defaults, name=base.name)
    return dataclasses.replace(own, versions=base.versions)


def load_version_models(
    spec: AppSpec, candidate: VersionCandidate, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
) -> tuple[LoadedModel, ...]:
    """Load and warm up every model of ``candidate``, checked against each other and the manifest.

    On any failure the models already loaded are closed before the error is raised. A version without
    models is valid only for an app with a handler.
    """
    if not candidate.files and spec.handler is None:
        raise VersionNotFound("no model files (.h5, .keras) or SavedModel folders found")
    models: list[LoadedModel] = []
    try:
        for file in map(Path, candidate.files):
            own = spec.name if file == Path(candidate.path) else None  # TF Serving's <app>/<N>/saved_model.pb
            models.append(
                load_model(
                    file,
                    signature=spec.signature,
                    trust_code=spec.trust_code,
                    max_file_bytes=max_file_bytes,
                    name=own,
                    warmup_shapes=spec.warmup.shapes,
                    warmup_values=Path(candidate.path) / WARMUP_FILE,
                )
            )
        if models:
            check_compatible(spec, tuple(models))
    except BaseException:
        for model in models:
            model.close()
        raise
    return tuple(models)


DEMO_MODEL_PREFIX = "yyai_demo_"  # the Keras name of every placeholder model `make demo` builds


def demo_checked(spec: AppSpec, models: tuple[LoadedModel, ...]) -> AppSpec:
    """``spec``, its ``demo`` cleared when the models are not the placeholders `make demo` built (real weights
    copied over them): ``demo = true`` in app.toml holds only while the demo's own weights serve. SavedModels
    carry no name and are taken at the manifest's word."""
    keras_names = [getattr(model.keep, "name", "") for model in models if model.fmt == "keras"]
    if not spec.demo or all(name.startswith(DEMO_MODEL_PREFIX) for name in keras_names):
        return spec
    log.info(
        "app %s: app.toml says demo = true but its models are not the demo's placeholders; answering "
        "demo: false (remove demo = true from app.toml)",
        spec.name,
    )
    return dataclasses.replace(spec, demo=False)


def check_compatible(spec: AppSpec, models: tuple[LoadedModel, ...]) -> None:
    """All models of a version take the same inputs, and the manifest fits them."""
    first = models[0]
    for model in models[1:]:
        _same_inputs(first, model)
    signature = first.signature
    image = image_input(signature, spec.input)
    if spec.input.name is not None and image is None:
        names = ", ".join(signature.input_names)
        raise ModelLoadError(
            first.path, f"app.toml input.name '{spec.input.name}' is not an input that takes images (inputs: {names})"
        )
    shape = image_shape(image, signature.batched) if image is not None else None
    if spec.input.size is not None and shape is not None:
        width, height = spec.input.size
        model_h, model_w = shape[0][:2]
        if (model_h not in (None, height)) or (model_w not in (None, width)):
            raise ModelLoadError(
                first.path,
                f"app.toml input.size {list(spec.input.size)} (width, height) does not "
                f"match the model's input '{image.name}' {model_w}x{model_h}",
            )
    for model in models:
        outputs = model.signature.outputs
        if len(outputs) == 1:
            kind = postprocess.infer_kind(
                spec.output, outputs[0].shape, outputs[0].dtype, outputs[0].name in model.distributions
            )
            postprocess.check_labels(spec.output, outputs[0].shape, kind, outputs[0].dtype)


def _same_inputs(first: LoadedModel, model: LoadedModel) -> None:
    """Same input names (one-input models may name theirs differently), dtypes, shapes and batching."""
    ours, theirs = first.signature, model.signature
    if ours.input_names != theirs.input_names and not len(ours.inputs) == len(theirs.inputs) == 1:
        raise ModelLoadError(
            model.path,
            f"its inputs {list(theirs.input_names)} differ from {first.name}'s "
            f"{list(ours.input_names)}; the models of one app share their inputs",
        )
    for mine, other in zip(ours.inputs, theirs.inputs):
        if (mine.dtype, mine.shape) != (other.dtype, other.shape):
            raise ModelLoadError(
                model.path,
                f"input '{other.name}' is {other.dtype} {other.shape_text()} but "
                f"{first.name}'s is {mine.dtype} {mine.shape_text()}; the models of "
                f"one app share their inputs",
            )
    if ours.batched != theirs.batched:
        raise ModelLoadError(
            model.path,
            f"it is {'' if theirs.batched else 'not '}batched and {first.name} is "
            f"{'' if ours.batched else 'not '}; the models of one app share their inputs",
        )


def version_manifest(
    base: AppSpec, candidate: VersionCandidate, *, app_dir: Path, batching_defaults: BatchingSpec | None
) -> AppSpec:
    """A numbered version's own manifest (or the app's); a snapshot's frozen one (absent: defaults). An uploaded
    version never runs code (trust_code off)."""
    if candidate.numbered:
        spec = manifest_for(app_dir, Path(candidate.path), base=base, batching_defaults=batching_defaults)
        if (Path(candidate.path) / UPLOADED_MARKER).exists():
            spec = dataclasses.replace(spec, trust_code=False)  # no code from an upload, ever
        return spec
    frozen = load_manifest(Path(candidate.path), batching_defaults=batching_defaults, name=base.name)
    return dataclasses.replace(frozen, versions=base.versions)


def version_handler(
    spec: AppSpec, candidate: VersionCandidate, *, app_dir: Path, settings: HandlerSettings
) -> LoadedHandler | None:
    """The version's handler, if its manifest names one: from the version folder, else the app folder
    (an uploaded version's folder is never searched). Without models it must have a postprocess hook."""
    if spec.handler is None:
        return None
    version_dir = Path(candidate.path)
    folders = [] if (version_dir / UPLOADED_MARKER).exists() else [version_dir]
    handler = load_handler(
        spec, version=candidate.id, folders=[*folders, app_dir], app_folder=app_dir, settings=settings
    )
    if not candidate.files and not handler.has("postprocess"):
        handler.close()
        raise HandlerLoadError(
            f"app '{spec.name}' has no model, so its handler {handler.file} must define "
            f"postprocess (it gives the answer)"
        )
    return handler
