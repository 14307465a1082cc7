"""Caller values against a signature: dtypes, shapes, rows or columns, images, groups (tensors.py, request.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from yyai.runtime import preprocess
from yyai.runtime.batching import Job
from yyai.runtime.errors import BadTensor, ImageTooLarge, InputError
from yyai.runtime.feed import Scaled, aligned_concatenate
from yyai.runtime.limits import RequestLimits
from yyai.runtime.manifest import InputSpec
from yyai.runtime.request import image_input, prepare
from yyai.runtime.signature import Signature, TensorSpec
from yyai.runtime.tensors import EncodedImage, Rows, coerce

VEC = TensorSpec("v", "float32", (2,))


def png(width: int, height: int, value: int = 10) -> EncodedImage:
    return EncodedImage(cv2.imencode(".png", np.full((height, width, 3), value, np.uint8))[1].tobytes())


def signature(*inputs: TensorSpec, batched: bool = True) -> Signature:
    return Signature("serving_default", tuple(inputs), (TensorSpec("out", "float32", (1,)),), batched=batched)


def jobs(prepared):
    return [(indices, {k: v.shape for k, v in job.inputs.items()}, job.batched) for indices, job in prepared.jobs]


# --- coerce ------------------------------------------------------------------------------------------


def test_json_lists_become_the_input_dtype():
    rows = [[1, 2], [0.5, -1e3]]
    array = coerce(rows, VEC, rows_first=True)
    assert array.dtype == np.float32 and array.shape == (2, 2)
    np.testing.assert_array_equal(array, np.array(rows, np.float32))


def test_any_length_axis():
    assert coerce(np.zeros((2, 6)), TensorSpec("v", "float32", (None,)), rows_first=True).shape == (2, 6)


@pytest.mark.parametrize("value", [[[1, 2], [3]], [[1, [2]]]])
def test_ragged_rows_refused(value):
    with pytest.raises(BadTensor, match="ragged"):
        coerce(value, VEC, rows_first=True)


@pytest.mark.parametrize(
    "value, words",
    [
        ([["1", "2"]], "got strings"),
        ([[1, None]], "got values that are not all numbers"),
        ([[True, False]], "got booleans"),
        ([[{"x": 1}, 2]], "got values that are not all numbers"),
        ([[2**70, 1]], "got values that are not all numbers"),
    ],
)
def test_non_numbers_refused_for_a_float_input(value, words):
    with pytest.raises(BadTensor, match=f"input 'v' takes numbers \\(float32\\), {words}"):
        coerce(value, VEC, rows_first=True)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1e39])
def test_non_finite_values_refused(value):
    with pytest.raises(BadTensor, match="NaN, infinity"):
        coerce([[0.0, value]], VEC, rows_first=True)


def test_shape_errors_name_the_input_and_both_shapes():
    with pytest.raises(BadTensor) as caught:
        coerce([[[1, 2, 3], [4, 5, 6]]], TensorSpec("img", "float32", (2, 2)), rows_first=True)
    assert caught.value.message == "input 'img' takes shape [2, 2] per row, got [2, 3]"
    with pytest.raises(BadTensor, match="one entry per row"):
        coerce(3.0, VEC, rows_first=True)


def test_integer_inputs_take_integers_in_range_only():
    spec = TensorSpec("ids", "int8", (2,))
    assert coerce([[1, -5]], spec, rows_first=True).dtype == np.int8
    with pytest.raises(BadTensor, match="takes integers \\(int8\\), got floats"):
        coerce([[1.0, 2.0]], spec, rows_first=True)
    with pytest.raises(BadTensor, match="300 is out of its range"):
        coerce([[300, 1]], spec, rows_first=True)
    with pytest.raises(BadTensor, match="-1 is out of its range"):
        coerce([[-1, 1]], TensorSpec("u", "uint16", (2,)), rows_first=True)


def test_bool_and_string_inputs():
    assert coerce([[True, False]], TensorSpec("b", "bool", (2,)), rows_first=True).dtype == bool
    with pytest.raises(BadTensor, match="takes booleans"):
        coerce([[1, 0]], TensorSpec("b", "bool", (2,)), rows_first=True)
    text = coerce(["héllo", b"\x00raw"], TensorSpec("s", "string", ()), rows_first=True)
    assert text.dtype == object and text.tolist() == ["héllo".encode(), b"\x00raw"]
    with pytest.raises(BadTensor, match="takes strings, got int"):
        coerce([1], TensorSpec("s", "string", ()), rows_first=True)


def test_too_many_dimensions_refused_before_use():
    deep = 0.0
    for _ in range(40):
        deep = [deep]
    with pytest.raises(BadTensor, match="40 dimensions; the limit is 32"):
        coerce(deep, TensorSpec("x", "float32", None), rows_first=True)


# --- prepare: names, rows and columns --------------------------------------------------------------


def test_one_input_takes_any_name():
    prepared = prepare(
        {"whatever": [[1, 2]]}, signature=signature(VEC), input_spec=InputSpec(), columnar=True, limits=RequestLimits()
    )
    assert jobs(prepared) == [([0], {"v": (1, 2)}, True)]


def test_several_inputs_are_matched_by_name():
    sig = signature(VEC, TensorSpec("ids", "int64", (3,)))
    prepared = prepare(
        {"v": [[1, 2], [3, 4]], "ids": [[1, 2, 3], [4, 5, 6]]},
        signature=sig,
        input_spec=InputSpec(),
        columnar=True,
        limits=RequestLimits(),
    )
    assert jobs(prepared) == [([0, 1], {"v": (2, 2), "ids": (2, 3)}, True)]
    with pytest.raises(BadTensor, match="missing input 'ids'; the inputs are 'v', 'ids'"):
        prepare({"v": [[1, 2]]}, signature=sig, input_spec=InputSpec(), columnar=True, limits=RequestLimits())
    with pytest.raises(BadTensor, match="unknown input 'zz'"):
        prepare(
            {"v": [[1, 2]], "ids": [[1, 2, 3]], "zz": 1},
            signature=sig,
            input_spec=InputSpec(),
            columnar=True,
            limits=RequestLimits(),
        )
    with pytest.raises(BadTensor, match="different numbers of rows: 'v' 2, 'ids' 1"):
        prepare(
            {"v": [[1, 2], [3, 4]], "ids": [[1, 2, 3]]},
            signature=sig,
            input_spec=InputSpec(),
            columnar=True,
            limits=RequestLimits(),
        )


def test_rows_limit():
    with pytest.raises(BadTensor, match="5 rows; the limit is 4"):
        prepare(
            {"v": Rows([[0.0, 0.0]] * 5)},
            signature=signature(VEC),
            input_spec=InputSpec(),
            columnar=False,
            limits=RequestLimits(max_rows=4),
        )


def test_unbatched_signature_columnar_is_one_row_and_rows_run_one_by_one():
    sig = signature(TensorSpec("image", "float32", (2, 2)), batched=False)
    one = prepare(
        {"image": [[1, 2], [3, 4]]}, signature=sig, input_spec=InputSpec(), columnar=True, limits=RequestLimits()
    )
    assert jobs(one) == [([0], {"image": (1, 2, 2)}, False)]
    rows = prepare(
        {"image": Rows([[[1, 2], [3, 4]], [[5, 6], [7, 8]]])},
        signature=sig,
        input_spec=InputSpec(),
        columnar=False,
        limits=RequestLimits(),
    )
    assert jobs(rows) == [([0], {"image": (1, 2, 2)}, False), ([1], {"image": (1, 2, 2)}, False)]


# --- prepare: images -------------------------------------------------------------------------------


def test_images_at_their_own_size_are_grouped_by_shape():
    sig = signature(TensorSpec("img", "float32", (None, None, 3)))
    images = Rows([png(4, 3), png(5, 5), png(4, 3)])
    prepared = prepare({"img": images}, signature=sig, input_spec=InputSpec(), columnar=False, limits=RequestLimits())
    assert jobs(prepared) == [([0, 2], {"img": (2, 3, 4, 3)}, True), ([1], {"img": (1, 5, 5, 3)}, True)]


def test_manifest_size_makes_every_image_one_shape():
    sig = signature(TensorSpec("img", "float32", (None, None, 3)))
    prepared = prepare(
        {"img": Rows([png(4, 3), png(5, 5)])},
        signature=sig,
        input_spec=InputSpec(size=(6, 2)),
        columnar=False,
        limits=RequestLimits(),
    )
    assert jobs(prepared) == [([0, 1], {"img": (2, 2, 6, 3)}, True)]


def test_images_feed_an_uint8_input_raw_and_a_string_input_as_bytes():
    raw = prepare(
        {"x": Rows([png(2, 2, value=77)])},
        signature=signature(TensorSpec("x", "uint8", (2, 2, 3))),
        input_spec=InputSpec(),
        columnar=False,
        limits=RequestLimits(),
    )
    assert raw.jobs[0][1].inputs["x"].dtype == np.uint8 and raw.jobs[0][1].inputs["x"].max() == 77
    image = png(2, 2)
    text = prepare(
        {"jpeg": Rows([image])},
        signature=signature(TensorSpec("jpeg", "string", ())),
        input_spec=InputSpec(),
        columnar=False,
        limits=RequestLimits(),
    )
    assert text.jobs[0][1].inputs["jpeg"].tolist() == [bytes(image)]


def test_unbatched_image_input_with_a_leading_one():
    sig = signature(TensorSpec("x", "float32", (1, 3, 4, 3)), batched=False)
    prepared = prepare(
        {"x": Rows([png(9, 9)])}, signature=sig, input_spec=InputSpec(), columnar=False, limits=RequestLimits()
    )
    assert jobs(prepared) == [([0], {"x": (1, 1, 3, 4, 3)}, False)]


def test_images_for_an_input_that_takes_no_images():
    with pytest.raises(InputError, match="input 'v' does not take images"):
        prepare(
            {"v": Rows([png(2, 2)])},
            signature=signature(VEC),
            input_spec=InputSpec(),
            columnar=False,
            limits=RequestLimits(),
        )
    with pytest.raises(BadTensor, match="mixes images and other values"):
        prepare(
            {"v": Rows([png(2, 2), [1, 2]])},
            signature=signature(VEC),
            input_spec=InputSpec(),
            columnar=False,
            limits=RequestLimits(),
        )


def test_pixel_limits_per_image_and_per_request_come_before_decoding():
    sig = signature(TensorSpec("img", "float32", (None, None, 3)))
    with pytest.raises(ImageTooLarge, match="20x20 = 400 pixels; the limit is 300"):
        prepare(
            {"img": Rows([png(20, 20)])},
            signature=sig,
            input_spec=InputSpec(),
            columnar=False,
            limits=RequestLimits(max_pixels=300),
        )
    with pytest.raises(ImageTooLarge, match="more than 1000 pixels together"):
        prepare(
            {"img": Rows([png(20, 20)] * 3)},
            signature=sig,
            input_spec=InputSpec(),
            columnar=False,
            limits=RequestLimits(max_pixels=400, max_request_pixels=1000),
        )


def test_the_image_input_is_the_only_one_or_the_named_one():
    two = signature(TensorSpec("photo", "float32", (8, 8, 3)), VEC)
    assert image_input(two, InputSpec()) is None
    assert image_input(two, InputSpec(name="photo")).name == "photo"
    assert image_input(two, InputSpec(name="v")) is None  # a vector takes no images
    assert image_input(signature(TensorSpec("s", "string", ())), InputSpec()).name == "s"


def test_images_for_a_batched_float32_input_are_scaled_as_their_batch_is_put_together():
    """The job holds the uint8 pixels (feed.Scaled); the batch gets exactly what to_model_input gives."""
    spec = InputSpec(scale=2 / 255, offset=-1.0)
    image = EncodedImage(cv2.imencode(".png", np.random.default_rng(0).integers(0, 255, (6, 4, 3), np.uint8))[1])
    expected = preprocess.to_model_input(preprocess.decode_image(image), spec=spec, input_shape=(6, 4, 3))

    def column(rows, shape=(6, 4, 3)):
        prepared = prepare(
            {"img": Rows(rows)},
            signature=signature(TensorSpec("img", "float32", shape)),
            input_spec=spec,
            columnar=False,
            limits=RequestLimits(),
        )
        return [job.inputs["img"] for _, job in prepared.jobs]

    (one,) = column([image])
    (two,) = column([image, image])
    assert isinstance(one, Scaled) and one.pixels.dtype == np.uint8 and (len(one), one.shape) == (1, (1, 6, 4, 3))
    assert one.nbytes == expected.nbytes and Job("s", {"img": one}).key == Job("s", {"img": expected[None]}).key
    batch = aligned_concatenate([one, expected[None], two])  # with a float32 job of the same shape
    assert batch.dtype == np.float32 and batch.shape == (4, 6, 4, 3)
    assert all(np.array_equal(row.view(np.uint32), expected.view(np.uint32)) for row in batch)
    mixed = column([image, png(3, 3)], shape=(None, None, 3))  # sizes differ: per row, scaled already
    assert [type(job) for job in mixed] == [np.ndarray, np.ndarray] and mixed[0][0].dtype == np.float32
    assert np.array_equal(mixed[0][0], expected)
