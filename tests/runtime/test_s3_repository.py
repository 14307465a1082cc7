"""The s3:// model store: apps served from a bucket, snapshots kept in the bucket, every host's cache checked.

Real boto3 against moto's S3 server on loopback; each "host" is a registry with its own cache folder.
"""

import json
import shutil
import time

import numpy as np
import pytest

from tests import modelkit
from yyai.runtime.errors import RepositoryUnavailable, VersionNotFound
from yyai.runtime.registry import Registry, RegistryConfig
from yyai.runtime.repository import open_repository
from yyai.runtime.repository.bucket import parse_url

ONES = np.ones((1, *modelkit.SHAPE), np.float32)


def host(store, tmp_path, name: str) -> Registry:
    """A process on a host of its own: the bucket's registry with the host's own cache."""
    return Registry(RegistryConfig(store=store.url, cache_dir=tmp_path / name / "cache", settle_seconds=0))


def flat_app(store, tmp_path, weight: float, app: str = "calc") -> None:
    """Copy the operator's flat app of ``weight`` into the bucket (the same bytes every time for one weight)."""
    local = tmp_path / "operator" / f"{app}-{weight}"
    if not local.exists():
        modelkit.regressor(local / "m.h5", weight=weight)
        (local / "app.toml").write_text('description = "sums"\n')
    store.put_tree(local, app)


def value(util) -> float:
    _, [out] = modelkit.predict(util, ONES)
    return float(out.ravel()[0])


def test_a_flat_app_serves_from_the_bucket_and_its_snapshot_lives_there(s3, tmp_path):
    flat_app(s3, tmp_path, 2.0)
    leader = host(s3, tmp_path, "a")
    assert leader.names() == ["calc"]
    report = leader.get("calc").reload()
    assert value(leader.get("calc")) == pytest.approx(2.0 * 64)
    snapshot_keys = s3.keys(f"calc/.snapshots/{report.new_version}/")
    assert f"calc/.snapshots/{report.new_version}/.manifest.json" in snapshot_keys
    assert f"calc/.snapshots/{report.new_version}/m.h5" in snapshot_keys

    # the flat files change in the bucket; another host still gets exactly what the leader froze
    flat_app(s3, tmp_path, 7.0)
    follower = host(s3, tmp_path, "b")
    assert follower.get("calc").follow(report.new_version, pinned=None).new_version == report.new_version
    assert value(follower.get("calc")) == pytest.approx(2.0 * 64)
    assert follower.get("calc").status()["description"] == "sums"


def test_numbered_versions_fetch_only_the_one_served(s3, tmp_path):
    for number, weight in ((1, 1.0), (2, 3.0)):
        folder = tmp_path / "operator" / str(number)
        modelkit.regressor(folder / "m.h5", weight=weight)
        (folder / "READY").touch()
        s3.put_tree(folder, f"calc/{number}")
    s3.put("calc/3/m.h5", b"half-copied")  # no READY, fresh: not complete yet
    registry = Registry(RegistryConfig(store=s3.url, cache_dir=tmp_path / "cache", settle_seconds=60))
    util = registry.get("calc")
    assert util.reload().new_version == "2" and value(util) == pytest.approx(3.0 * 64)
    cached = sorted(p.name for p in (tmp_path / "cache" / "calc" / ".versions").iterdir() if p.is_dir())
    assert cached == ["2"], "only the version served is downloaded"
    versions = {v["version"]: v for v in util.status()["versions"]}
    assert versions["3"]["complete"] is False and "settle" in versions["3"]["reason"]
    assert util.reload(1).new_version == "1" and value(util) == pytest.approx(64.0)
    assert util.source.evict(keep={"1"}) == ["2"]
    assert not (tmp_path / "cache" / "calc" / ".versions" / "2").exists()


def test_the_same_files_restored_are_the_same_version_on_a_new_host(s3, tmp_path):
    flat_app(s3, tmp_path, 2.0)
    target = host(s3, tmp_path, "a").get("calc").reload().new_version
    s3.delete("calc/")  # the app is gone, snapshots and all ...
    flat_app(s3, tmp_path, 2.0)  # ... and the very same files are copied back
    fresh = host(s3, tmp_path, "new")
    assert fresh.get("calc").follow(target, pinned=None).new_version == target
    assert f"calc/.snapshots/{target}/.manifest.json" in s3.keys("calc/.snapshots/"), "frozen again, in the bucket"

    flat_app(s3, tmp_path, 5.0)
    s3.delete("calc/.snapshots/")
    with pytest.raises(VersionNotFound, match="is not in s3://"):
        host(s3, tmp_path, "other").get("calc").follow(target, pinned=None)


def test_a_snapshot_that_fails_its_checks_is_never_served(s3, tmp_path):
    flat_app(s3, tmp_path, 2.0)
    target = host(s3, tmp_path, "a").get("calc").reload().new_version
    good = s3.s3.client().get_object(Bucket=s3.bucket, Key=s3.key(f"calc/.snapshots/{target}/m.h5"))["Body"].read()
    s3.put(f"calc/.snapshots/{target}/m.h5", good[:-10] + b"0123456789")  # same size, other bytes
    other = host(s3, tmp_path, "b")
    with pytest.raises(RepositoryUnavailable, match="SHA-256"):
        other.get("calc").follow(target, pinned=None)
    s3.put(f"calc/.snapshots/{target}/m.h5", good[: len(good) // 2])  # short
    with pytest.raises(RepositoryUnavailable, match="bytes where"):
        other.get("calc").follow(target, pinned=None)
    leftovers = list((tmp_path / "b" / "cache" / "calc" / ".snapshots").iterdir())
    assert leftovers == [], "nothing of a failed download is kept"
    assert other.get("calc").current is None

    s3.put(f"calc/.snapshots/{target}/.manifest.json", b"{not json")
    with pytest.raises(RepositoryUnavailable, match="unreadable"):
        host(s3, tmp_path, "c").get("calc").follow(target, pinned=None)


def test_an_unreachable_bucket_serves_from_the_cache_and_says_so_quickly(s3, tmp_path, monkeypatch):
    flat_app(s3, tmp_path, 2.0)
    cached = host(s3, tmp_path, "a")
    target = cached.get("calc").reload().new_version
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    restarted = host(s3, tmp_path, "a")  # the same host's cache, after a restart
    assert restarted.names() == ["calc"], "the apps this host has cached"
    assert restarted.get("calc").follow(target, pinned=None).new_version == target
    assert value(restarted.get("calc")) == pytest.approx(2.0 * 64)
    started = time.monotonic()
    with pytest.raises(RepositoryUnavailable) as raised:
        host(s3, tmp_path, "empty").get("calc").follow(target, pinned=None)
    assert time.monotonic() - started < 30
    assert "s3cr3t" not in raised.value.message and "cannot be reached" in raised.value.message


def test_keys_that_leave_their_folder_are_ignored(s3, tmp_path):
    flat_app(s3, tmp_path, 2.0)
    s3.put("calc/../escape.h5", b"x")
    s3.put("calc/sub//twice.h5", b"x")
    s3.put("calc/folder/", b"")
    registry = host(s3, tmp_path, "a")
    registry.get("calc").reload()
    assert not (tmp_path / "a" / "cache" / "escape.h5").exists()
    assert sorted(p.name for p in (tmp_path / "a" / "cache" / "calc").iterdir() if not p.name.startswith(".")) == [
        "app.toml",
        "m.h5",
    ]


def test_an_upload_claims_the_next_number_and_is_complete_only_with_ready(s3, tmp_path):
    staging = tmp_path / "staging"
    modelkit.regressor(staging / "m.h5", weight=4.0)
    (staging / "READY").touch()
    source = open_repository(s3.url, cache_dir=tmp_path / "cache").app("calc")
    assert source.publish(staging) == 1 and source.publish(staging) == 2
    assert "calc/1/READY" in s3.keys("calc/1/") and "calc/1/.uploading" not in s3.keys("calc/1/")
    s3.put("calc/3/.uploading", b"")  # an upload that died after its claim
    s3.put("calc/3/m.h5", b"partial")
    versions = {c.id: c for c in source.candidates(settle_seconds=0)}
    assert versions["2"].complete and not versions["3"].complete and "upload" in versions["3"].reason
    assert source.publish(staging) == 4, "a claimed number is never reused"


def test_the_store_url_is_checked_and_never_carries_credentials():
    assert parse_url("s3://models/prod/v1/") == ("models", "prod/v1")
    assert parse_url("s3://models") == ("models", "")
    for bad in ("s3://AKIA:secret@models/x", "s3:/models", "s3://", "s3://a/x"):
        with pytest.raises(ValueError) as raised:
            parse_url(bad)
        assert "secret" not in str(raised.value)


def test_cached_copies_survive_a_process_restart_and_a_listing_is_not_a_download(s3, tmp_path):
    flat_app(s3, tmp_path, 2.0)
    first = host(s3, tmp_path, "a")
    target = first.get("calc").reload().new_version
    mirror = tmp_path / "a" / "cache" / "calc"
    state = json.loads((mirror / ".mirror.json").read_text())
    assert set(state) == {"app.toml", "m.h5"}
    stamp = (mirror / "m.h5").stat().st_mtime_ns
    again = host(s3, tmp_path, "a")
    assert again.get("calc").follow(target, pinned=None).new_version == target
    assert (mirror / "m.h5").stat().st_mtime_ns == stamp, "an unchanged file is not downloaded again"
    shutil.rmtree(mirror / ".snapshots")
    assert again.get("calc").follow(target, pinned=None).new_version == target  # fetched back from the bucket
