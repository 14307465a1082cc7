"""What every foreign protocol shares: model names, versions, tensors in, named tensors out.

Addressing (see docs/protocols.md):

* ``<app>`` is the whole app: one input named ``input`` and one output per
  model, named by the model's stem (``a.h5`` -> ``a``), in file-name order;
* ``<app>.<model>`` is one model of the app (its stem or its file name), with
  its one output under the same name.

Versions: a request may name a version; it must be the serving one (its id, or
its number, see :func:`version_number`), else :class:`VersionNotFound`. Every
call takes the serving version once and runs on it, so a response never mixes
versions, and inference always goes through the version's batcher.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from django.conf import settings

from yyai import metrics
from yyai.runtime.errors import AppNotFound, BadTensor, VersionNotFound
from yyai.runtime.loader import MODEL_SUFFIXES
from yyai.runtime.model_util import ModelUtil
from yyai.runtime.servable import ServingVersion
from yyai.serving import get_registry

INPUT_NAME = "input"
NAME_PATTERN = r"[A-Za-z][A-Za-z0-9_-]{0,63}(?:\.[^/:]+)?"  # for URLs: <app> or <app>.<model>
SIGNATURE_NAME = "serving_default"


@dataclass(frozen=True)
class Target:
    """A parsed model name: the app and, optionally, one of its models (by stem or file name)."""

    name: str
    app: str
    model: str | None = None


def parse_name(name: str) -> Target:
    """``<app>`` or ``<app>.<model>``; app names never hold a dot."""
    app, _, model = name.partition(".")
    return Target(name=name, app=app, model=model or None)


def stem(model_name: str) -> str:
    """The output name of a model: its file name without a model suffix (``a.h5`` -> ``a``)."""
    path = Path(model_name)
    return path.stem if path.suffix in MODEL_SUFFIXES else model_name


def unique_names(file_names: list[str]) -> list[str]:
    """Output names of a version's models: stems, or the file name where two models share a stem."""
    stems = [stem(n) for n in file_names]
    return [s if stems.count(s) == 1 else n for s, n in zip(stems, file_names)]


def _names(version: ServingVersion) -> list[str]:
    return unique_names([m.name for m in version.models])


def version_number(version_id: str) -> int:
    """A version id as TF Serving's int64: the folder number, or the flat layout's 12-hex hash as an integer."""
    return int(version_id) if version_id.isdigit() else int(version_id, 16)


def check_version(version: ServingVersion, requested: str | int | None, *, name: str) -> None:
    """Raise VersionNotFound unless ``requested`` is empty or names the serving version."""
    if requested is None or requested == "":
        return
    wanted = str(requested)
    if wanted in (version.id, str(version_number(version.id))):
        return
    raise VersionNotFound(f"Servable not found for request: Specific({name}, {wanted}); "
                          f"the serving version is {version.id}")


def get_util(target: Target) -> ModelUtil:
    return get_registry().get(target.app)


@contextmanager
def serving(target: Target, requested_version: str | int | None = None) -> Iterator[ServingVersion]:
    """The app's serving version for the whole call, checked against the requested version and model."""
    with get_util(target).serving() as version:
        check_version(version, requested_version, name=target.name)
        model_indices(version, target)  # an unknown model fails before any work
        yield version


def model_indices(version: ServingVersion, target: Target) -> list[int]:
    """Indices of the addressed models in ``version.models``; AppNotFound for an unknown model."""
    if target.model is None:
        return list(range(len(version.models)))
    names = _names(version)
    for i, model in enumerate(version.models):
        if target.model in (model.name, names[i]):
            return [i]
    known = ", ".join(f"{target.app}.{name}" for name in names)
    raise AppNotFound(f"app '{target.app}' has no model '{target.model}' (models: {known})")


def output_names(version: ServingVersion, target: Target) -> list[str]:
    """Names of the addressed outputs, in file-name order."""
    names = _names(version)
    return [names[i] for i in model_indices(version, target)]


def output_shape(version: ServingVersion, name: str) -> tuple[int, ...]:
    return version.models[_names(version).index(name)].output_shape


def tensor_batch(version: ServingVersion, values) -> np.ndarray:
    """Numbers (nested lists or an array) -> a validated float32 batch for ``version``."""
    return version.prepare_tensors(values, max_batch=settings.YYAI_MAX_BATCH)


def image_batch(version: ServingVersion, images: list[bytes]) -> np.ndarray:
    """Encoded images -> a preprocessed float32 batch, with the server's limits."""
    if not images:
        raise BadTensor("no images in the input")
    if len(images) > settings.YYAI_MAX_BATCH:
        raise BadTensor(f"{len(images)} images; the limit is {settings.YYAI_MAX_BATCH}")
    return version.prepare_images(images, max_pixels=settings.YYAI_MAX_IMAGE_PIXELS)


def run(version: ServingVersion, target: Target, batch: np.ndarray,
        wanted: list[str] | None = None) -> dict[str, np.ndarray]:
    """Run ``batch`` through the version's batcher; the addressed (or ``wanted``) outputs by name."""
    names = output_names(version, target)
    if wanted:
        unknown = [w for w in wanted if w not in names]
        if unknown:
            raise BadTensor(f"unknown output(s) {', '.join(unknown)}; the outputs are {', '.join(names)}")
    outputs = version.infer(batch)
    metrics.observe_predict(version, rows=len(batch))
    by_name = dict(zip(_names(version), outputs))
    return {name: by_name[name] for name in (wanted or names)}


def kind_of(version: ServingVersion, target: Target) -> tuple[str, int]:
    """(kind, model index) of a one-model target, for classify/regress; BadTensor for a whole multi-model app."""
    indices = model_indices(version, target)
    if len(indices) != 1:
        names = ", ".join(f"{target.app}.{n}" for n in output_names(version, target))
        raise BadTensor(f"'{target.name}' has several models; address one of: {names}")
    return version.kinds[indices[0]], indices[0]
