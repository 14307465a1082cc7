"""Tests of yyai.runtime.postprocess: kind inference, label checks, result formatting."""

from __future__ import annotations

import json

import numpy as np
import pytest

from yyai.runtime import postprocess
from yyai.runtime.errors import ManifestError
from yyai.runtime.manifest import OutputSpec
from yyai.runtime.postprocess import check_labels, format_results, infer_kind

SEX = ("female", "male")


def strict_json(results):
    """Results must serialise to strict JSON (no NaN) and hold only plain Python types."""
    return json.loads(json.dumps(results, allow_nan=False))


# --- infer_kind -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec,shape,kind",
    [
        (OutputSpec(), (1,), "regression"),
        (OutputSpec(), (), "regression"),
        (OutputSpec(labels=("only",)), (1,), "regression"),
        (OutputSpec(labels=("a", "b", "c")), (1,), "regression"),
        (OutputSpec(labels=SEX), (1,), "classification"),
        (OutputSpec(), (2,), "regression"),  # raw logits or scores: plain values
        (OutputSpec(), (10,), "regression"),
        (OutputSpec(labels=("a", "b", "c")), (3,), "classification"),  # a label per unit: the operator said so
        (OutputSpec(labels=("a", "b")), (3,), "regression"),
        (OutputSpec(kind="regression"), (4,), "regression"),
        (OutputSpec(kind="classification"), (1,), "classification"),
    ],
)
def test_infer_kind(spec, shape, kind):
    assert infer_kind(spec, shape) == kind


@pytest.mark.parametrize(
    "shape, kind", [((10,), "classification"), ((2,), "classification"), ((1,), "regression"), ((None,), "regression")]
)
def test_an_output_seen_as_a_probability_distribution_is_a_classification(shape, kind):
    assert infer_kind(OutputSpec(), shape, "float32", distribution=True) == kind
    assert infer_kind(OutputSpec(kind="regression"), shape, "float32", distribution=True) == "regression"


# --- check_labels ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "labels,shape,kind",
    [
        (None, (3,), "classification"),
        (("a", "b", "c"), (3,), "classification"),
        (SEX, (1,), "classification"),
        (("a", "b", "c"), (5,), "regression"),
    ],
)
def test_check_labels_accepts_matching_labels(labels, shape, kind):
    check_labels(OutputSpec(labels=labels), shape, kind)


@pytest.mark.parametrize(
    "labels,shape,message",
    [
        (("a", "b"), (3,), "2 labels but the model's 3 output unit(s) need 3"),
        (("a", "b", "c", "d"), (3,), "4 labels but the model's 3 output unit(s) need 3"),
        (("a",), (1,), "1 labels but the model's 1 output unit(s) need 2"),
        (("a", "b", "c"), (1,), "3 labels but the model's 1 output unit(s) need 2"),
    ],
)
def test_check_labels_rejects_mismatch(labels, shape, message):
    with pytest.raises(ManifestError) as caught:
        check_labels(OutputSpec(labels=labels), shape, "classification")
    assert message in caught.value.message
    assert caught.value.code == "invalid_manifest"


# --- format_results: regression -------------------------------------------------------


def test_regression_single_value_rounds_to_decimals():
    outputs = np.array([[3.26999], [1.005], [-0.004]], np.float32)
    results = format_results("score.h5", outputs, spec=OutputSpec(decimals=2), kind="regression")
    assert results == [
        {"name": "score.h5", "value": 3.27},
        {"name": "score.h5", "value": 1.0},
        {"name": "score.h5", "value": 0.0},
    ]
    assert all(type(r["value"]) is float for r in results)
    assert json.dumps(results[2]["value"]) == "0.0"
    assert strict_json(results) == results


def test_regression_decimals_from_spec():
    outputs = np.array([[2.718281828]], np.float64)
    assert format_results("m", outputs, spec=OutputSpec(decimals=5), kind="regression")[0]["value"] == 2.71828
    assert format_results("m", outputs, spec=OutputSpec(decimals=0), kind="regression")[0]["value"] == 3.0


def test_regression_of_a_flat_batch():
    results = format_results("m", np.array([1.234, 5.678]), spec=OutputSpec(), kind="regression")
    assert [r["value"] for r in results] == [1.234, 5.678]


def test_floats_keep_the_models_precision_unless_the_manifest_rounds_them():
    outputs = np.array([[0.57, 1 / 3]], np.float32)
    (plain,) = format_results("m", outputs, spec=OutputSpec(), kind="regression")
    assert plain["value"] == [float(np.float32(0.57)), float(np.float32(1 / 3))]  # the float32s, exactly
    (rounded,) = format_results("m", outputs, spec=OutputSpec(decimals=2), kind="regression")
    assert rounded["value"] == [0.57, 0.33]
    (scored,) = format_results("m", outputs, spec=OutputSpec(), kind="classification")
    assert scored["score"] == float(np.float32(0.57))


def test_regression_vector_keeps_row_shape():
    outputs = np.array([[[0.111, 0.222], [0.333, 0.444]], [[1.0, 2.0], [3.0, 4.555]]], np.float32)
    results = format_results("box", outputs, spec=OutputSpec(decimals=1), kind="regression")
    assert results == [
        {"name": "box", "value": [[0.1, 0.2], [0.3, 0.4]]},
        {"name": "box", "value": [[1.0, 2.0], [3.0, 4.6]]},
    ]


def test_non_finite_outputs_become_null():
    outputs = np.array([[np.nan], [np.inf], [1.0]], np.float32)
    results = format_results("m", outputs, spec=OutputSpec(), kind="regression")
    assert [r["value"] for r in results] == [None, None, 1.0]
    strict_json(results)


# --- format_results: classification ---------------------------------------------------


def test_classification_with_labels():
    outputs = np.array([[0.1, 0.7, 0.2], [0.333333, 0.333334, 0.333333], [0.9, 0.05, 0.05]], np.float32)
    spec = OutputSpec(labels=("cat", "dog", "bird"), decimals=4)
    results = format_results("cls.keras", outputs, spec=spec, kind="classification")
    assert results == [
        {"name": "cls.keras", "value": [0.1, 0.7, 0.2], "label": "dog", "score": 0.7},
        {"name": "cls.keras", "value": [0.3333, 0.3333, 0.3333], "label": "dog", "score": 0.3333},
        {"name": "cls.keras", "value": [0.9, 0.05, 0.05], "label": "cat", "score": 0.9},
    ]
    assert strict_json(results) == results


def test_classification_without_labels_uses_index():
    outputs = np.array([[0.2, 0.1, 0.05, 0.65]], np.float32)
    (result,) = format_results("m", outputs, spec=OutputSpec(decimals=4), kind="classification")
    assert result == {"name": "m", "value": [0.2, 0.1, 0.05, 0.65], "label": "3", "score": 0.65}
    assert type(result["label"]) is str


def test_two_unit_softmax_matches_the_design_example():
    (result,) = format_results("cnn_b.h5", np.array([[0.12, 0.88]]), spec=OutputSpec(labels=SEX), kind="classification")
    assert result == {"name": "cnn_b.h5", "value": [0.12, 0.88], "label": "male", "score": 0.88}


@pytest.mark.parametrize(
    "p,label,score",
    [(0.9, "male", 0.9), (0.1, "female", 0.9), (0.5, "male", 0.5), (0.49999, "female", 0.5), (0.0, "female", 1.0)],
)
def test_binary_sigmoid(p, label, score):
    outputs = np.array([[p]], np.float32)
    (result,) = format_results("sex.h5", outputs, spec=OutputSpec(labels=SEX, decimals=4), kind="classification")
    assert result == {"name": "sex.h5", "value": round(p, 4), "label": label, "score": score}
    assert type(result["value"]) is float


def test_binary_sigmoid_without_labels():
    results = format_results("m", np.array([[0.8], [0.3]]), spec=OutputSpec(), kind="classification")
    assert [(r["label"], r["score"]) for r in results] == [("1", 0.8), ("0", 0.7)]


def test_large_batch_is_plain_python():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(256, 10)).astype(np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    results = format_results("m", probs, spec=OutputSpec(), kind="classification")
    assert len(results) == 256
    assert [r["label"] for r in results] == [str(i) for i in probs.argmax(axis=1)]
    assert all(type(v) is float for r in results for v in r["value"])
    assert strict_json(results) == results


@pytest.mark.parametrize(
    "rows",
    [
        [[0.5, 0.5, 0.1]],  # a tie: the first highest wins
        [[0.0, -0.0, 0.0], [-0.0, -1.0, -2.0]],  # -0.0 reads 0.0
        [[np.nan, 1.0, 0.0]],  # not finite: null, as numpy words it
        [[1.0, np.inf, 0.0], [-np.inf, -1.0, 0.5]],
        [[1e-320, 0.0, 5e-324]],  # subnormals kept
        np.random.default_rng(1).random((30, 9)).tolist(),  # past the plain-Python size: numpy's path
    ],
)
def test_classification_of_few_values_in_plain_python_is_numpys(rows, monkeypatch):
    """Few values (one request's row) are formatted in plain Python; the result is the numpy path's, bit for bit."""
    outputs = np.array(rows, np.float64)
    plain = format_results("m", outputs, spec=OutputSpec(), kind="classification")
    monkeypatch.setattr(postprocess, "_PLAIN_VALUES", -1)
    vectorised = format_results("m", outputs, spec=OutputSpec(), kind="classification")
    assert json.dumps(plain) == json.dumps(vectorised)
    assert [type(v) for r in plain for v in r["value"]] == [type(v) for r in vectorised for v in r["value"]]
    if rows == [[0.5, 0.5, 0.1]]:
        assert plain[0]["label"] == "0"
    if rows[0] == [0.0, -0.0, 0.0]:
        assert json.dumps(plain[1]["value"]) == "[0.0, -1.0, -2.0]" and plain[1]["label"] == "0"


EDGES = [0.0, -0.0, 0.5, 1.5, 2.5, -2.5, 2.675, 1.005, 0.125, -0.125, 1e-320, 5e-324, 1.7e308, -1.7e308, 2.0**53 + 1]
EDGES += [np.nan, np.inf, -np.inf, 123456.789, -0.0049, 0.0049, 4.5e15, 0.999999999]


@pytest.mark.parametrize("decimals", [None, 0, 1, 2, 3, 6, 15, 22])
def test_few_values_are_rounded_in_plain_python_as_numpy_rounds_them(decimals, monkeypatch):
    """Regression, binary and raw values of a request's row take the plain-Python rounding; its values are
    numpy's (scale by 10**decimals, round half to even, scale back, -0.0 as 0.0, non-finite as null), bit for
    bit: halves, ties, subnormals, values that overflow once scaled, and random ones."""
    values = np.array(EDGES + np.random.default_rng(2).normal(0, 1000, 200).tolist(), np.float64)
    spec = OutputSpec(decimals=decimals)

    def formatted():
        with np.errstate(all="ignore"):  # numpy's own path overflows where the plain one gives infinity too
            rows = [
                format_results("m", values[i : i + 1, None], spec=spec, kind="regression") for i in range(len(values))
            ]
            rows += [
                format_results("m", values[i : i + 1, None] % 1.0, spec=spec, kind="classification")  # binary
                for i in range(len(values))
            ]
            return json.dumps(rows), json.dumps(postprocess.json_values(values[:8], decimals))

    plain = formatted()
    monkeypatch.setattr(postprocess, "_PLAIN_VALUES", -1)
    assert plain == formatted()
