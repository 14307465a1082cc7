"""Open a Keras ``.h5`` / ``.keras`` file as a runnable model with one signature, ``serving_default``.

* Loaded with ``safe_mode=True, compile=False`` (no pickled Python runs, no
  optimizer is built); ``trust_code`` turns safe mode off for the operator's
  own Lambda layers.
* Any number of inputs and outputs: inputs are named after the model's input
  layers, outputs after the layers that produce them (``model.output_names``);
  dtypes and shapes are the model's own, unknown dimensions included. The batch
  dimension is Keras's, always free.
* The model runs through one concrete function, traced once at load from an
  input signature that leaves every unknown dimension free; the model owns it
  (its own graph): nothing process-global is touched.
"""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

from .errors import ModelLoadError
from .feed import Feed
from .opened import Opened, reason_of
from .signature import SERVING_DEFAULT, Signature, TensorSpec, dtype_name


def open_keras(path: Path, *, trust_code: bool) -> Opened:
    """Load the Keras file at ``path``; ModelLoadError on any failure."""
    try:
        model = keras.models.load_model(path, compile=False, safe_mode=not trust_code)
        inputs, outputs = list(model.inputs or []), list(model.outputs or [])
    except Exception as exc:  # keras raises many types for bad files; all mean "cannot load"
        raise ModelLoadError(path, reason_of(exc)) from exc
    if not inputs or not outputs:
        raise ModelLoadError(
            path,
            "the model has no defined inputs or outputs (a subclassed model that was "
            "never built); save it as a functional or Sequential model",
        )
    try:
        input_specs = [TensorSpec(_layer_name(t), dtype_name(t.dtype), tuple(t.shape[1:])) for t in inputs]
        output_specs = [
            TensorSpec(name, dtype_name(t.dtype), tuple(t.shape[1:]))
            for name, t in zip(_output_names(model, outputs), outputs)
        ]
    except ValueError as exc:
        raise ModelLoadError(path, str(exc)) from exc
    signature = Signature(SERVING_DEFAULT, tuple(input_specs), tuple(output_specs), batched=True)
    return Opened(
        fmt="keras",
        signatures={SERVING_DEFAULT: signature},
        runners={SERVING_DEFAULT: _compile(model, signature)},
        params=int(model.count_params()),
        keep=model,
    )


def _layer_name(tensor) -> str:
    history = getattr(tensor, "_keras_history", None)
    return history.operation.name if history is not None else tensor.name


def _output_names(model, outputs) -> list[str]:
    """The layers that produce the outputs, made unique (a layer may give several outputs)."""
    names = list(getattr(model, "output_names", None) or [])
    if len(names) != len(outputs):
        names = [_layer_name(t) for t in outputs]
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}_{seen[name] - 1}")
    return unique


def _compile(model, signature: Signature):
    """One graph per model: a tf.function over a dict of named inputs, every unknown dimension free."""
    specs = {
        s.name: tf.TensorSpec((None, *s.shape), tf.string if s.dtype == "string" else s.dtype, name=s.name)
        for s in signature.inputs
    }
    single = signature.inputs[0].name if len(signature.inputs) == 1 else None
    names = signature.output_names

    @tf.function(input_signature=[specs])
    def graph(feed):
        result = model(feed[single] if single is not None else feed, training=False)
        return dict(zip(names, keras.tree.flatten(result)))

    concrete = graph.get_concrete_function()  # called directly: no per-call trace-cache lookup

    def run(feed: Feed) -> dict:
        return {name: value.numpy() for name, value in concrete(feed.tensors()).items()}

    return run
