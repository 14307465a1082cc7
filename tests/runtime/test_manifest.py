"""app.toml parsing: defaults, every key, and errors that name the file and the key."""

import pytest

from yyai.runtime.errors import ManifestError
from yyai.runtime.manifest import BatchingSpec, load_manifest


def write(tmp_path, text):
    (tmp_path / "app.toml").write_text(text)
    return tmp_path


def test_missing_manifest_gives_defaults(tmp_path):
    spec = load_manifest(tmp_path)
    assert spec.name == tmp_path.name
    assert spec.input.size is None and spec.input.color is None
    assert spec.output.kind is None and spec.output.decimals is None  # the model's floats as they are
    assert spec.batching == BatchingSpec()
    assert spec.versions.policy == "latest"


def test_full_manifest(tmp_path):
    spec = load_manifest(
        write(
            tmp_path,
            """
description = "Face score"
demo = true
[input]
size = [350, 300]
color = "bgr"
scale = 0.5
offset = -1
[output]
kind = "classification"
decimals = 3
labels = ["a", "b"]
[batching]
max_batch_size = 8
batch_timeout_micros = 0
[versions]
policy = "specific"
specific = 3
""",
        ),
        batching_defaults=BatchingSpec(max_enqueued=99),
    )
    assert spec.description == "Face score" and spec.demo is True
    assert spec.input.size == (350, 300) and spec.input.color == "bgr"
    assert spec.input.scale == 0.5 and spec.input.offset == -1.0
    assert spec.output.kind == "classification" and spec.output.labels == ("a", "b") and spec.output.decimals == 3
    assert spec.batching == BatchingSpec(max_batch_size=8, batch_timeout_micros=0, max_enqueued=99)
    assert spec.versions.specific == 3


def test_labels_txt_used_when_manifest_has_none(tmp_path):
    (tmp_path / "labels.txt").write_text("cat\n\ndog\n")
    assert load_manifest(tmp_path).output.labels == ("cat", "dog")


@pytest.mark.parametrize(
    "text, key",
    [
        ("colour = 'rgb'", "colour"),
        ("[input]\nsize = [10]", "input.size"),
        ("[input]\nsize = [10, 0]", "input.size"),
        ("[input]\ncolor = 'cmyk'", "input.color"),
        ("[input]\nscale = 'x'", "input.scale"),
        ("[input]\nscale = nan", "input.scale"),
        ("[input]\nlayout = 'nchw'", "input.layout"),
        ("demo = 1", "demo"),
        ("[output]\ndecimals = true", "output.decimals"),
        ("[output]\ndecimals = 40", "output.decimals"),
        ("[output]\nlabels = []", "output.labels"),
        ("[output]\nlabels = [1, 2]", "output.labels"),
        ("[output]\nkind = 'detection'", "output.kind"),
        ("[batching]\nmax_batch_size = 0", "batching.max_batch_size"),
        ("[batching]\nmax_enqueued = -1", "batching.max_enqueued"),
        ("[batching]\nmax_batch = 4", "batching.max_batch"),
        ("[versions]\npolicy = 'specific'", "versions.specific"),
        ("[versions]\npolicy = 'oldest'", "versions.policy"),
        ("input = 3", "input"),
    ],
)
def test_bad_values_name_file_and_key(tmp_path, text, key):
    with pytest.raises(ManifestError) as info:
        load_manifest(write(tmp_path, text))
    assert str(tmp_path / "app.toml") in info.value.message
    assert f"'{key}'" in info.value.message


def test_invalid_toml(tmp_path):
    with pytest.raises(ManifestError, match="not valid TOML"):
        load_manifest(write(tmp_path, "[input\nsize = "))


def test_a_huge_or_deeply_nested_manifest_is_a_manifest_error(tmp_path):
    (tmp_path / "app.toml").write_text("description = '" + "x" * (2 << 20) + "'\n")
    with pytest.raises(ManifestError, match="larger than"):
        load_manifest(tmp_path)
    (tmp_path / "app.toml").write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(ManifestError, match="nested too deeply|not valid TOML"):
        load_manifest(tmp_path)


def test_memory_table(tmp_path):
    spec = load_manifest(write(tmp_path, "[memory]\npinned = true\npriority = 7\n"))
    assert (spec.memory.pinned, spec.memory.priority) == (True, 7)
    assert load_manifest(write(tmp_path, "")).memory.pinned is False
    for text, key in [
        ("[memory]\npinned = 1\n", "memory.pinned"),
        ("[memory]\npriority = -1\n", "memory.priority"),
        ("[memory]\nsize = 3\n", "memory.size"),
    ]:
        with pytest.raises(ManifestError, match=f"key '{key}'"):
            load_manifest(write(tmp_path, text))
