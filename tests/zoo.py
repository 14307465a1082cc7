"""Real models of every shape users bring, with outputs known in closed form.

* ``two_heads``: a Keras face model with two heads, ``age`` (regression) and ``sex`` (softmax);
* ``two_inputs``: an image and a metadata vector -> one score;
* ``any_size``: a fully convolutional model, input ``(None, None, 3)``;
* ``tokens``: an ``int32`` input (an embedding);
* ``text``: a SavedModel with a ``string`` input, string and int outputs, and two signatures;
* ``tf1_detector``: a TF1 graph exported the TF Serving tutorials' way: a placeholder without a
  batch dimension, a signature named ``detected_model``, several named outputs.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from tests.modelkit import _save  # noqa: E402

FACE = (8, 8, 3)


def two_heads(path: Path, *, age_weight: float = 0.5) -> Path:
    """``age = age_weight * sum(face)``; ``sex`` = softmax of ``[sum, -sum]`` (``sex[0] >= 0.5`` for bright faces)."""
    face = keras.Input(FACE, name="face")
    flat = keras.layers.Flatten()(face)
    age = keras.layers.Dense(1, kernel_initializer=keras.initializers.Constant(age_weight), name="age")(flat)
    kernel = np.stack([np.ones(np.prod(FACE)), -np.ones(np.prod(FACE))], axis=1) * 0.01
    sex = keras.layers.Dense(
        2, activation="softmax", kernel_initializer=keras.initializers.Constant(kernel), name="sex"
    )(flat)
    return _save(keras.Model(face, [age, sex]), path)


def two_inputs(path: Path) -> Path:
    """``score = sum(image) + 10 * sum(meta)``."""
    image = keras.Input(FACE, name="image")
    meta = keras.Input((4,), name="meta")
    both = keras.layers.Concatenate()([keras.layers.Flatten()(image), meta])
    kernel = np.concatenate([np.ones(np.prod(FACE)), np.full(4, 10.0)])[:, None]
    score = keras.layers.Dense(1, kernel_initializer=keras.initializers.Constant(kernel), name="score")(both)
    return _save(keras.Model([image, meta], score), path)


def any_size(path: Path) -> Path:
    """``brightness = mean(R) + mean(G) + mean(B)`` for an image of any height and width."""
    image = keras.Input((None, None, 3), name="image")
    means = keras.layers.GlobalAveragePooling2D()(image)
    out = keras.layers.Dense(1, kernel_initializer="ones", name="brightness")(means)
    return _save(keras.Model(image, out), path)


def tokens(path: Path) -> Path:
    """``mean_id = mean(ids)`` of five int32 token ids in 0..9."""
    ids = keras.Input((5,), dtype="int32", name="ids")
    table = keras.initializers.Constant(np.arange(10, dtype=np.float32)[:, None])
    embedded = keras.layers.Embedding(10, 1, embeddings_initializer=table)(ids)
    out = keras.layers.Flatten(name="mean_id")(keras.layers.GlobalAveragePooling1D()(embedded))
    return _save(keras.Model(ids, out), path)


class _Text(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text):
        return {"length": tf.strings.length(text), "upper": tf.strings.upper(text)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def words(self, text):
        spaces = tf.strings.length(tf.strings.regex_replace(text, "[^ ]", ""))
        return {"words": tf.cast(spaces + 1, tf.int64)}


def text(folder: Path) -> Path:
    """A SavedModel of strings: ``serving_default`` -> ``length`` (int32) and ``upper`` (string);
    ``words`` -> the number of space-separated words (int64)."""
    module = _Text()
    _fresh(folder)
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serve, "words": module.words})
    return folder


class _Jpeg(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve(self, image_bytes):
        heights = tf.map_fn(
            lambda data: tf.shape(tf.io.decode_jpeg(data, channels=3))[0], image_bytes, fn_output_signature=tf.int32
        )
        return {"height": heights}


def jpeg(folder: Path) -> Path:
    """A SavedModel that decodes JPEG bytes itself (``image_bytes``, string) -> each image's ``height``."""
    module = _Jpeg()
    _fresh(folder)
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serve})
    return folder


def tf1_detector(folder: Path, *, weight: float = 2.0) -> Path:
    """A TF1 graph: placeholder ``image`` (8, 8, 3), no batch dimension; signature ``detected_model`` with
    ``score = weight * sum(image)`` (float32 scalar), ``boxes`` (1, 4) float32 and ``classes`` (1,) int64."""
    v1 = tf.compat.v1
    _fresh(folder)
    graph = tf.Graph()
    with graph.as_default():
        image = v1.placeholder(tf.float32, shape=FACE, name="image")
        w = v1.get_variable("w", initializer=tf.constant(weight))
        score = tf.reduce_sum(image) * w
        boxes = tf.reshape(tf.range(4, dtype=tf.float32), (1, 4)) + 0 * score
        classes = tf.constant([7], dtype=tf.int64)
        with v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            builder = v1.saved_model.builder.SavedModelBuilder(str(folder))
            signature = v1.saved_model.signature_def_utils.predict_signature_def(
                inputs={"image": image}, outputs={"score": score, "boxes": boxes, "classes": classes}
            )
            builder.add_meta_graph_and_variables(
                session, [v1.saved_model.tag_constants.SERVING], signature_def_map={"detected_model": signature}
            )
            builder.save()
    return folder


def ready(folder: Path) -> Path:
    """Mark a numbered version folder complete."""
    (folder / "READY").touch()
    return folder


def _fresh(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)


def build_store(root: Path) -> Path:
    """A model store with one app per shape above (``detector`` in TF Serving's version layout)."""
    two_heads(root / "agesex" / "heads.keras")
    (root / "agesex" / "app.toml").write_text("[output]\ndecimals = 4\n")
    two_inputs(root / "meta" / "m.keras")
    (root / "meta" / "app.toml").write_text('[input]\nname = "image"\n')
    any_size(root / "anysize" / "fcn.keras")
    tokens(root / "tokens" / "t.keras")
    text(root / "text" / "strings")
    jpeg(root / "jpeg" / "decoder")
    ready(tf1_detector(root / "detector" / "1"))
    (root / "detector" / "app.toml").write_text('signature = "detected_model"\n')
    return root
