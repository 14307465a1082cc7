"""Snapshots of the flat layout: frozen bytes by content id, loaded exactly by every other process."""

import os
import shutil
import time

import numpy as np
import pytest

from tests import modelkit
from yyai.runtime.errors import VersionNotFound
from yyai.runtime.model_util import ModelUtil
from yyai.runtime.snapshots import SNAPSHOTS, freeze, prune, snapshot_ids
from yyai.runtime.source import scan_versions

BATCH = np.ones((1, *modelkit.SHAPE), np.float32)


def value(util) -> float:
    return float(modelkit.predict(util, BATCH)[1][0].ravel()[0])


def test_freeze_copies_models_and_manifest_under_their_content_id(make_app):
    app = make_app(models={"a.h5": 1.0, "b.keras": 2.0}, manifest="[output]\ndecimals = 3\n")
    (app / "labels.txt").write_text("x\n")
    (app / "sample.png").write_bytes(b"not frozen")
    (scanned,) = scan_versions(app)
    frozen = freeze(app)
    assert frozen.id == scanned.id and not frozen.numbered
    folder = app / SNAPSHOTS / frozen.id
    assert sorted(os.listdir(folder)) == ["a.h5", "app.toml", "b.keras", "labels.txt"]
    assert [os.path.basename(f) for f in frozen.files] == ["a.h5", "b.keras"]
    again = freeze(app)
    assert again.id == frozen.id and snapshot_ids(app) == [frozen.id]
    (app / "app.toml").write_text("[output]\ndecimals = 1\n")
    assert freeze(app).id != frozen.id, "the manifest is part of the version"


def test_a_snapshot_does_not_change_when_its_source_is_rewritten_in_place(make_app, tmp_path):
    app = make_app(models={"m.h5": 1.0})
    frozen = freeze(app)
    before = (app / SNAPSHOTS / frozen.id / "m.h5").read_bytes()
    staged = modelkit.regressor(tmp_path / "new.h5", weight=5.0).read_bytes()
    with open(app / "m.h5", "r+b") as handle:  # what `cp new.h5 m.h5` does: the same inode, rewritten
        handle.truncate(0)
        handle.write(staged)
    assert (app / SNAPSHOTS / frozen.id / "m.h5").read_bytes() == before


def test_follow_loads_exactly_the_frozen_version_whatever_the_folder_holds(make_app):
    app = make_app(models={"m.h5": 1.0}, manifest="[output]\ndecimals = 2\n")
    leader, follower = ModelUtil(app), ModelUtil(app)
    frozen = leader.reload().new_version
    modelkit.regressor(app / "m.h5", weight=9.0)  # the folder changes right after the reload...
    modelkit.random_bytes(app / "stray.h5")  # ...and a corrupt file lands in it
    (app / "app.toml").write_text("[output]\ndecimals = 0\n")
    report = follower.follow(frozen, pinned=None)
    assert report.new_version == frozen and value(follower) == pytest.approx(64.0)
    assert follower.current.spec.output.decimals == 2, "the frozen manifest, not today's"
    with pytest.raises(VersionNotFound, match="version 0123456789ab of app 'app' is not on disk"):
        follower.follow("0123456789ab", pinned=None)
    with pytest.raises(VersionNotFound, match="version 123456789012 of app 'app' is not on disk"):
        follower.follow("123456789012", pinned=None)  # all digits: neither a folder nor a snapshot
    assert follower.current.id == frozen


def test_follow_loads_a_numbered_version_even_if_the_policy_would_choose_another(make_app):
    app = make_app(models={})
    for number, weight in ((1, 1.0), (2, 2.0)):
        modelkit.regressor(app / str(number) / "m.h5", weight=weight)
        (app / str(number) / "READY").touch()
    util = ModelUtil(app)
    assert util.follow("1", pinned=None).new_version == "1" and value(util) == pytest.approx(64.0)
    with pytest.raises(VersionNotFound, match="version 7"):
        util.follow("7", pinned=None)


def test_a_snapshot_id_of_decimal_digits_only_is_still_a_snapshot(make_app):
    app = make_app(models={"m.h5": 1.0})
    frozen = freeze(app)
    digits = "123456789012"
    os.rename(app / SNAPSHOTS / frozen.id, app / SNAPSHOTS / digits)
    util = ModelUtil(app)
    assert util.follow(digits, pinned=None).new_version == digits and value(util) == pytest.approx(64.0)
    assert util.reload(version=digits).new_version == digits and util.pinned == digits


def test_rollback_by_pinning_an_older_snapshot(make_app):
    app = make_app(models={"m.h5": 1.0})
    util = ModelUtil(app)
    first = util.reload().new_version
    modelkit.regressor(app / "m.h5", weight=3.0)
    second = util.reload().new_version
    assert value(util) == pytest.approx(192.0)
    util.reload(version=first)
    assert (util.pinned, util.current.id, value(util)) == (first, first, pytest.approx(64.0))
    util.reload(version="latest")
    assert (util.pinned, util.current.id) == (None, second)
    assert {v["version"]: v["state"] for v in util.status()["versions"]} == {second: "AVAILABLE", first: "START"}


def test_prune_keeps_what_is_served_and_the_newest(make_app):
    app = make_app(models={"m.h5": 1.0})
    ids = []
    for weight in (1.0, 2.0, 3.0, 4.0):
        modelkit.regressor(app / "m.h5", weight=weight)
        ids.append(freeze(app).id)
        time.sleep(0.01)
    stale = app / SNAPSHOTS / ".tmp-old"
    stale.mkdir()
    os.utime(stale, (0, 0))
    removed = prune(app, keep={ids[0]}, keep_last=2)
    assert sorted(removed) == sorted(ids[1:2]) and set(snapshot_ids(app)) == {ids[0], ids[2], ids[3]}
    assert not stale.exists()


def test_an_app_folder_that_is_itself_a_saved_model_freezes_without_recursion(tmp_path):
    import keras

    model = keras.models.load_model(modelkit.regressor(tmp_path / "src.keras", weight=1.0))
    app = tmp_path / "store" / "sm"
    model.export(str(app), verbose=False)
    util = ModelUtil(app)
    report = util.reload()
    assert value(util) == pytest.approx(64.0) and report.models[0]["name"] == "sm"
    assert not (app / SNAPSHOTS / report.new_version / "sm" / SNAPSHOTS).exists()


def test_a_restored_folder_serves_its_old_id_and_other_files_are_another_version(make_app, tmp_path):
    app = make_app(models={"m.h5": 1.0}, manifest='description = "sums"\n')
    backup = tmp_path / "backup"
    shutil.copytree(app, backup, ignore=shutil.ignore_patterns(SNAPSHOTS))
    target = ModelUtil(app).reload().new_version
    shutil.rmtree(app)  # the folder is lost, snapshots and all, and restored from the backup
    shutil.copytree(backup, app)
    restarted = ModelUtil(app)
    assert restarted.follow(target, pinned=None).new_version == target
    assert snapshot_ids(app) == [target], "frozen again"
    assert value(restarted) == pytest.approx(64.0)

    shutil.rmtree(app)
    shutil.copytree(backup, app)
    modelkit.regressor(app / "m.h5", weight=3.0)
    with pytest.raises(VersionNotFound, match="the flat files are another version"):
        ModelUtil(app).follow(target, pinned=None)
