"""Open a SavedModel folder, the way TF Serving serves it: every signature, any dtype and shape.

* TF2 first: ``tf.saved_model.load`` restores the object graph; each signature
  is a concrete function, called with named tensors.
* When the object graph cannot be restored (a Keras 2 model saved with its
  optimizer: "'_UserObject' object has no attribute 'add_slot'"), or the
  SavedModel is a TF1 graph (no object graph at all), it is loaded literally as
  TF Serving's C++ loader and the seed did: ``tf.compat.v1.saved_model.loader.load``
  into a ``tf.Graph`` and a ``tf.compat.v1.Session`` of its own, run by feeding
  and fetching the signature's tensors. The session belongs to this model
  version alone and is closed when the version retires.

Either way the meta graph tagged ``serve`` is used (or the only one there is).
A signature whose inputs all have a free leading dimension is batched; one
that has none (a TF1 placeholder without a batch dimension) is served one
request at a time. Loading runs graph code only: no Python of the model.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from .errors import ModelLoadError
from .feed import Feed
from .opened import Opened, reason_of
from .signature import Signature, TensorSpec, dtype_name, leading_batch, row_shape

log = logging.getLogger(__name__)

SAVED_MODEL_FILE = "saved_model.pb"
SERVE_TAG = "serve"
VARIABLE_OPS = ("VariableV2", "VarHandleOp", "Variable")


def open_saved_model(path: Path) -> Opened:
    """Open the SavedModel folder at ``path``; ModelLoadError on any failure."""
    meta = _serving_meta_graph(path)
    if len(meta.object_graph_def.nodes):
        try:
            return _open_tf2(path, list(meta.meta_info_def.tags))
        except ModelLoadError:
            raise
        except Exception as exc:  # the object graph cannot be restored in this TensorFlow: TF1 loader
            log.info(
                "%s: the TF2 object API cannot restore it (%s); loading its graph into a session of its own",
                path,
                reason_of(exc),
            )
    return _open_tf1(path, meta)


def _serving_meta_graph(path: Path) -> meta_graph_pb2.MetaGraphDef:
    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString((path / SAVED_MODEL_FILE).read_bytes())
    except Exception as exc:  # DecodeError, OSError
        raise ModelLoadError(path, f"{SAVED_MODEL_FILE} is not a readable SavedModel: {reason_of(exc)}") from exc
    graphs = list(proto.meta_graphs)
    serving = [g for g in graphs if SERVE_TAG in g.meta_info_def.tags]
    if serving:
        return serving[0]
    if len(graphs) == 1:
        return graphs[0]
    raise ModelLoadError(path, f"the SavedModel has {len(graphs)} meta graphs and none is tagged '{SERVE_TAG}'")


def _open_tf2(path: Path, tags: list[str]) -> Opened:
    loaded = tf.saved_model.load(str(path), tags=tags or None)
    functions = dict(getattr(loaded, "signatures", {}) or {})
    signatures, runners = {}, {}
    for name, function in functions.items():
        args, kwargs = function.structured_input_signature
        if args:
            log.warning("%s: signature %s takes positional inputs; not served", path, name)
            continue
        inputs = [TensorSpec(key, dtype_name(spec.dtype), _dims(spec.shape)) for key, spec in sorted(kwargs.items())]
        outputs = [
            TensorSpec(key, dtype_name(spec.dtype), _dims(spec.shape))
            for key, spec in sorted(function.structured_outputs.items())
        ]
        signatures[name] = _signature(name, inputs, outputs)
        runners[name] = _tf2_runner(function)
    if not signatures:
        raise ModelLoadError(
            path,
            "the SavedModel has no signature with named inputs (export one with "
            "tf.saved_model.save(..., signatures=...))",
        )
    variables = {id(v): v for f in functions.values() for v in f.variables}  # what the signatures use
    params = sum(int(np.prod(v.shape)) for v in variables.values())
    return Opened(fmt="saved_model", signatures=signatures, runners=runners, params=params, keep=loaded)


def _tf2_runner(function):
    def run(feed: Feed) -> dict[str, np.ndarray]:
        return {name: value.numpy() for name, value in function(**feed.tensors()).items()}

    run.function = function  # keeps the concrete function (and through it the restored object) alive
    return run


def _open_tf1(path: Path, meta: meta_graph_pb2.MetaGraphDef) -> Opened:
    graph = tf.Graph()
    threads = tf.config.threading
    config = tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=threads.get_intra_op_parallelism_threads(),
        inter_op_parallelism_threads=threads.get_inter_op_parallelism_threads(),
    )
    session = tf.compat.v1.Session(graph=graph, config=config)
    try:
        with graph.as_default():
            loaded = tf.compat.v1.saved_model.loader.load(session, list(meta.meta_info_def.tags), str(path))
        signatures, runners = {}, {}
        for name, definition in sorted(loaded.signature_def.items()):
            if name.startswith("__"):  # __saved_model_init_op and friends: not callable signatures
                continue
            specs = _tf1_specs(path, name, definition)
            if specs is None:
                continue
            inputs, outputs, feeds, fetches = specs
            signatures[name] = _signature(name, inputs, outputs)
            runners[name] = _tf1_runner(session, feeds, fetches)
        if not signatures:
            raise ModelLoadError(path, "the SavedModel has no signature of dense tensors to serve")
        params = sum(_variable_size(op) for op in graph.get_operations() if op.type in VARIABLE_OPS)
    except ModelLoadError:
        session.close()
        raise
    except Exception as exc:
        session.close()
        raise ModelLoadError(path, f"not a loadable SavedModel: {reason_of(exc)}") from exc
    return Opened(fmt="tf1_session", signatures=signatures, runners=runners, params=params, close=session.close)


def _tf1_specs(path: Path, name: str, definition):
    """(inputs, outputs, feed tensor names, fetch tensor names) of a signature_def; None if it is not dense."""

    def specs(infos) -> tuple[list[TensorSpec], dict[str, str]] | None:
        result, names = [], {}
        for key, info in sorted(infos.items()):
            if info.WhichOneof("encoding") != "name":
                log.warning("%s: signature %s has a sparse or composite tensor '%s'; not served", path, name, key)
                return None
            result.append(TensorSpec(key, dtype_name(tf.dtypes.as_dtype(info.dtype)), _proto_dims(info.tensor_shape)))
            names[key] = info.name
        return result, names

    inputs, outputs = specs(definition.inputs), specs(definition.outputs)
    if inputs is None or outputs is None or not inputs[0]:
        return None
    return inputs[0], outputs[0], inputs[1], outputs[1]


def _tf1_runner(session, feeds: dict[str, str], fetches: dict[str, str]):
    def run(feed: Feed) -> dict[str, np.ndarray]:
        values = session.run(fetches, feed_dict={feeds[name]: array for name, array in feed.arrays.items()})
        return {name: np.asarray(value) for name, value in values.items()}

    return run


def _signature(name: str, inputs: list[TensorSpec], outputs: list[TensorSpec]) -> Signature:
    batched = leading_batch([s.shape for s in inputs])
    strip = [TensorSpec(s.name, s.dtype, row_shape(s.shape, batched)) for s in inputs]
    out = [
        TensorSpec(s.name, s.dtype, row_shape(s.shape, batched and s.shape is not None and len(s.shape) > 0))
        for s in outputs
    ]
    return Signature(name, tuple(strip), tuple(out), batched=batched)


def _dims(shape: tf.TensorShape):
    return None if shape.rank is None else tuple(None if d is None else int(d) for d in shape.as_list())


def _proto_dims(shape):
    if shape.unknown_rank:
        return None
    return tuple(None if d.size < 0 else int(d.size) for d in shape.dim)


def _variable_size(op) -> int:
    try:
        dims = op.get_attr("shape").dim
    except ValueError:
        return 0
    return int(np.prod([max(d.size, 0) for d in dims])) if dims else 1
