"""Addressing: which app, model, signature, outputs and version a request names (after TF Serving's model
spec), checked against the serving version.

``<app>`` is every model of the app, ``<app>.<model>`` one model (its stem or
its file name). An address of one model (``<app>.<model>``, or an app that has
one model) shows that model's own signature; an address of several models is
one servable whose outputs are each model's, named ``<stem>`` when it has one
output and ``<stem>/<output>`` when it has several.

Versions: a request may name a version (its id, or its number, see
:func:`version_number`) or a label; it must be one the app serves here, else
:class:`VersionNotFound`. A request that names none gets the target, or the
canary for its share (:mod:`yyai.runtime.routes`; the sticky header is read from
:data:`request_headers`, which every entry point sets).
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

from yyai.fleet.process_registry import get_registry
from yyai.logging_json import served_version
from yyai.runtime.errors import AppNotFound, InputError, NoModel, VersionNotFound
from yyai.runtime.loader import MODEL_SUFFIXES
from yyai.runtime.model_util import ModelUtil
from yyai.runtime.servable import ServingVersion
from yyai.runtime.signature import Signature, TensorSpec


@dataclass(frozen=True)
class Address:
    """An addressed model name: the app and, optionally, one of its models (by stem or file name)."""

    name: str
    app: str
    model: str | None = None


def parse_address(name: str) -> Address:
    """``<app>`` or ``<app>.<model>``; app names never hold a dot."""
    app, _, model = name.partition(".")
    return Address(name=name, app=app, model=model or None)


request_headers: ContextVar[Mapping[str, str] | None] = ContextVar("yyai_request_headers", default=None)


@contextmanager
def serving(
    address: Address, requested_version: str | int | None = None, *, handled: bool = False, label: str | None = None
) -> Iterator[ServingVersion]:
    """The version the request gets (see the module docstring) for the whole call, checked against the
    requested version and model (``handled``: a whole app with a handler needs no model, its handler answers)."""
    with routed(address.app, requested_version, label).serving() as version:
        check_version(version, None if label is not None else requested_version, name=address.name)
        if not (handled and handles(version, address)):
            model_indices(version, address)  # an unknown model fails before any work
        token = served_version.set((address.app, version.id))  # every log line of the request says it
        try:
            yield version
        finally:
            served_version.reset(token)


def routed(app: str, requested_version: str | int | None = None, label: str | None = None) -> ModelUtil:
    """The ModelUtil serving the version a request for ``app`` gets: the one it names (by number, id or
    label), else the canary for its share, else the target's."""
    registry = get_registry()
    util, routes = registry.get(app), registry.routes(app)
    if label is not None:
        wanted = routes.of_label(label)
    elif requested_version not in (None, ""):
        wanted = str(requested_version)
    else:
        headers = request_headers.get()
        wanted = routes.pick(headers.get(routes.canary_header) if headers and routes.canary_header else None)
    if wanted is None or _names(util.version_id, wanted):
        return util
    for version, other in registry.also(app).items():
        if _names(version, wanted):
            return other
    if label is not None:
        raise VersionNotFound(f"version {wanted}, labelled '{label}', is not served here yet; retry")
    return util  # a canary not loaded here yet: the target; a version named: check_version words the refusal


def _names(version_id: str | None, wanted: str) -> bool:
    return version_id is not None and wanted in (version_id, str(version_number(version_id)))


def handles(version: ServingVersion, address: Address) -> bool:
    """Whether the version's handler answers the address (the whole app; one model is addressed directly)."""
    return version.handler is not None and address.model is None


def stem(model_name: str) -> str:
    """A model's short name: its file name without a model suffix (``a.h5`` -> ``a``)."""
    path = Path(model_name)
    return path.stem if path.suffix in MODEL_SUFFIXES else model_name


def unique_names(file_names: list[str]) -> list[str]:
    """Short names of a version's models: stems, or the file name where two models share a stem."""
    return list(_unique_names(tuple(file_names)))


@functools.lru_cache(maxsize=256)
def _unique_names(file_names: tuple[str, ...]) -> tuple[str, ...]:
    """:func:`unique_names`, worked out once per set of file names: every predict of a whole app asks
    (bench/NOTES.md, "Session 10")."""
    stems = [stem(n) for n in file_names]
    return tuple(s if stems.count(s) == 1 else n for s, n in zip(stems, file_names))


def model_indices(version: ServingVersion, address: Address) -> list[int]:
    """Indices of the addressed models in ``version.models``; AppNotFound for an unknown model, NoModel for an
    app that has only a handler."""
    if not version.models:
        raise NoModel(
            f"app '{address.app}' has no model to address with tensors: its handler answers at "
            f"POST /api/apps/{address.app}/predict/"
        )
    if address.model is None:
        return list(range(len(version.models)))
    names = unique_names([m.name for m in version.models])
    for i, model in enumerate(version.models):
        if address.model in (model.name, names[i]):
            return [i]
    known = ", ".join(f"{address.app}.{name}" for name in names)
    raise AppNotFound(f"app '{address.app}' has no model '{address.model}' (models: {known})")


def output_map(version: ServingVersion, address: Address, signature: Signature) -> list[tuple[str, int, str]]:
    """``(name, model index, the model's output name)`` of every output the address gives, in order."""
    indices = model_indices(version, address)
    models = [version.models[i] for i in indices]
    specs = [m.signatures[signature.name].outputs for m in models]
    if len(indices) == 1:
        return [(spec.name, indices[0], spec.name) for spec in specs[0]]
    short = unique_names([m.name for m in version.models])
    return [
        (short[i] if len(outs) == 1 else f"{short[i]}/{spec.name}", i, spec.name)
        for i, outs in zip(indices, specs)
        for spec in outs
    ]


def output_specs(version: ServingVersion, address: Address, signature: Signature) -> list[TensorSpec]:
    """The address's outputs under their served names."""
    return [
        TensorSpec(name, spec.dtype, spec.shape)
        for name, index, output in output_map(version, address, signature)
        for spec in version.models[index].signatures[signature.name].outputs
        if spec.name == output
    ]


def signatures_of(version: ServingVersion, address: Address) -> dict[str, Signature]:
    """Every signature the address can run (those every addressed model has alike), by name."""
    indices = model_indices(version, address)
    common = set.intersection(*(set(version.models[i].signatures) for i in indices))
    result = {}
    for name in sorted(common):
        try:
            result[name] = (
                version.signature_named(name) if len(indices) > 1 else version.models[indices[0]].signatures[name]
            )
        except InputError:
            continue
    return result


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
    raise VersionNotFound(
        f"Servable not found for request: Specific({name}, {wanted}); the serving version is {version.id}"
    )


def model_ready(address: Address, requested_version: str | int | None = None) -> bool:
    """True when the address's app serves (that version; on standby, its next request loads it): the model
    exists (AppNotFound otherwise; not checked on standby, where the models are not loaded)."""
    try:
        util = routed(address.app, requested_version)
    except VersionNotFound:
        return False
    current = util.current
    if current is None:
        return util.on_standby and (requested_version in (None, "") or _names(util.version_id, str(requested_version)))
    model_indices(current, address)
    try:
        check_version(current, requested_version, name=address.name)
    except VersionNotFound:
        return False
    return True
