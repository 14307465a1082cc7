"""Finding versions on disk: flat and numbered layouts, completeness, choice."""

import os
import time

import pytest

from yyai.runtime.errors import VersionNotFound
from yyai.runtime.manifest import VersionsSpec
from yyai.runtime.source import choose_version, scan_versions

LATEST = VersionsSpec()


def touch(path, data=b"x", age=0.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if age:
        stamp = time.time() - age
        os.utime(path, (stamp, stamp))
    return path


def test_empty_app_has_no_versions(tmp_path):
    assert scan_versions(tmp_path) == []
    with pytest.raises(VersionNotFound, match="no model files"):
        choose_version([], policy=LATEST)


def test_flat_layout_id_follows_content(tmp_path):
    touch(tmp_path / "b.h5", b"1")
    touch(tmp_path / "a.keras", b"2")
    touch(tmp_path / "notes.txt", b"ignored")
    touch(tmp_path / ".tmp-c.h5", b"in progress")
    [v] = scan_versions(tmp_path)
    assert not v.numbered and v.complete
    assert [os.path.basename(f) for f in v.files] == ["a.keras", "b.h5"]
    first = v.id
    touch(tmp_path / "b.h5", b"changed")
    assert scan_versions(tmp_path)[0].id != first
    touch(tmp_path / "b.h5", b"1")
    assert scan_versions(tmp_path)[0].id == first


def test_numbered_layout_completeness(tmp_path):
    touch(tmp_path / "loose.h5")  # ignored once numbered folders exist
    touch(tmp_path / "1" / "m.h5", age=60)
    touch(tmp_path / "2" / "m.h5")  # fresh, no READY: still being copied
    touch(tmp_path / "3" / "m.h5")
    touch(tmp_path / "3" / "READY")
    (tmp_path / "4").mkdir()  # empty
    (tmp_path / "notanumber").mkdir()
    versions = scan_versions(tmp_path, settle_seconds=5)
    assert [(v.id, v.complete) for v in versions] == [("1", True), ("2", False), ("3", True), ("4", False)]
    assert "settle" in versions[1].reason and "no model files" in versions[3].reason
    assert choose_version(versions, policy=LATEST).id == "3"


def test_latest_skips_incomplete_highest(tmp_path):
    touch(tmp_path / "1" / "m.h5", age=60)
    touch(tmp_path / "2" / "m.h5")
    assert choose_version(scan_versions(tmp_path, settle_seconds=5), policy=LATEST).id == "1"


def test_pinned_and_specific(tmp_path):
    touch(tmp_path / "1" / "m.h5", age=60)
    touch(tmp_path / "2" / "m.h5", age=60)
    touch(tmp_path / "3" / "m.h5")
    versions = scan_versions(tmp_path, settle_seconds=5)
    assert choose_version(versions, policy=VersionsSpec("specific", 1)).id == "1"
    assert choose_version(versions, policy=LATEST, pinned="1").id == "1"
    with pytest.raises(VersionNotFound, match="not complete"):
        choose_version(versions, policy=LATEST, pinned="3")
    with pytest.raises(VersionNotFound, match="not on disk"):
        choose_version(versions, policy=LATEST, pinned="9")
