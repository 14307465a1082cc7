"""The model repository under real gunicorn: what the database's target names is what every worker serves,
whatever happened to the store between two starts, on a local store and on an S3 bucket.

Every check sends requests on fresh connections, so they land on every worker; "every worker" is the
``processes`` list of the answers, which counts each live worker whether or not it ever loaded the app.
"""

import shutil

import pytest
import requests

from tests import modelkit, s3kit
from tests.liveserver import GunicornServer
from tests.scaleout.test_propagation import AUTH, TENSOR, versions

pytestmark = pytest.mark.slow


def answers(servers, path: str, count: int = 40) -> list[requests.Response]:
    """``count`` requests to ``path``, a new connection each, round-robin over ``servers``."""
    return [
        requests.post(servers[i % len(servers)].url(path), json=TENSOR, timeout=10)
        if path.endswith("predict/")
        else requests.get(servers[i % len(servers)].url(path), timeout=10)
        for i in range(count)
    ]


def reload(server, app: str, expect: int = 200) -> dict:
    response = requests.post(server.url(f"/api/apps/{app}/reload/"), json={}, auth=AUTH, timeout=90)
    assert response.status_code == expect, response.text
    return response.json()


def detail(server, app: str = "calc") -> dict:
    return requests.get(server.url(f"/api/apps/{app}/"), auth=AUTH, timeout=10).json()


def check_new_and_gone_apps(servers, add_app, remove_app, workers: int) -> None:
    """A new app serves on every worker once its reload answers; a gone one is gone from every worker."""
    add_app("late", 3.0)
    body = reload(servers[0], "late")
    assert body["converged"] and len(body["processes"]) == workers, body
    assert {r.status_code for r in answers(servers, "/api/apps/late/predict/")} == {200}
    remove_app("late")
    body = reload(servers[0], "late")
    assert body["removed"] and body["converged"] and len(body["processes"]) == workers, body
    assert {r.status_code for r in answers(servers, "/api/apps/late/")} == {404}
    assert {r.status_code for r in answers(servers, "/api/apps/late/predict/")} == {404}
    listed = {a["name"] for r in answers(servers, "/api/apps/", 10) for a in r.json()["results"]}
    assert "late" not in listed


def test_a_local_store_restored_moved_or_grown_serves_on_every_worker(flat_store, tmp_path):
    data = tmp_path / "data"
    backup = shutil.copytree(flat_store / "calc", tmp_path / "calc-backup")

    def add_app(name, weight):
        modelkit.regressor(flat_store / name / "m.h5", weight=weight)

    with GunicornServer(store=flat_store, data_dir=data, workers=3) as server:
        target, generation = detail(server)["target_version"], detail(server)["generation"]
        check_new_and_gone_apps([server], add_app, lambda name: shutil.rmtree(flat_store / name), workers=3)
        with (tmp_path / "up.h5").open("wb") as out:
            out.write(modelkit.regressor(tmp_path / "staged" / "up.h5", weight=2.0).read_bytes())
        with (tmp_path / "up.h5").open("rb") as upload:
            created = requests.post(
                server.url("/api/apps/uploaded/versions/"), files={"files": upload}, auth=AUTH, timeout=120
            )
        assert created.status_code == 201 and created.json()["converged"], created.text
        assert len(created.json()["processes"]) == 3
        assert {r.status_code for r in answers([server], "/api/apps/uploaded/predict/")} == {200}

    shutil.rmtree(flat_store / "calc")  # restored from a backup: the same files, no snapshot
    shutil.copytree(backup, flat_store / "calc")
    with GunicornServer(store=flat_store, data_dir=data, workers=3).start(migrate=False) as server:
        assert versions([server]) == {target}
        info = detail(server)
        assert (info["generation"], info["degraded"], len(info["processes"])) == (generation, False, 3)

    shutil.rmtree(flat_store / "calc")  # other files than the target's
    modelkit.regressor(flat_store / "calc" / "m.h5", weight=4.0)
    with GunicornServer(store=flat_store, data_dir=data, workers=3).start(migrate=False) as server:
        info = detail(server)
        assert info["target_version"] != target and info["generation"] == generation + 1
        assert versions([server]) == {info["target_version"]} and not info["degraded"]
        history = requests.get(server.url("/api/reloads/?app=calc&trigger=startup"), auth=AUTH, timeout=10).json()
        assert [(e["from_version"], e["to_version"]) for e in history["results"]] == [(target, info["target_version"])]


def test_an_s3_store_serves_every_instance_from_its_own_cache(tmp_path, postgres_url):
    operator = tmp_path / "operator"

    def put_app(store, name, weight):
        folder = operator / f"{name}-{weight}"
        if not folder.exists():
            modelkit.regressor(folder / "m.h5", weight=weight)
        store.put_tree(folder, name)

    with s3kit.running() as s3:  # a server of this test's own: it is stopped at the end
        store = s3.bucket()
        put_app(store, "calc", 1.0)
        env = {**s3.env, "YYAI_MODEL_STORE": store.url}
        a = GunicornServer(
            store=tmp_path / "unused", data_dir=tmp_path / "a", workers=2, database_url=postgres_url, env=env
        )
        b = GunicornServer(
            store=tmp_path / "unused", data_dir=tmp_path / "b", workers=2, database_url=postgres_url, env=env
        )
        with a, b.start(migrate=False):  # one database: a migrates it
            first = detail(a)["target_version"]
            assert versions([a, b]) == {first}
            put_app(store, "calc", 2.0)  # new weights copied into the bucket
            body = reload(b, "calc")
            assert body["converged"] and len(body["processes"]) == 4 and body["new_version"] != first
            assert versions([a, b]) == {body["new_version"]}
            assert f"calc/.snapshots/{body['new_version']}/.manifest.json" in store.keys("calc/.snapshots/")

            # a new instance with an empty cache joins the running fleet
            c = GunicornServer(
                store=tmp_path / "unused", data_dir=tmp_path / "c", workers=1, database_url=postgres_url, env=env
            )
            with c.start(migrate=False):
                assert versions([c], 10) == {body["new_version"]}
                check_new_and_gone_apps(
                    [a, b, c], lambda n, w: put_app(store, n, w), lambda n: store.delete(f"{n}/"), workers=5
                )
            target = body["new_version"]

        store.delete("calc/")  # restored into the bucket with other files, while nothing runs
        put_app(store, "calc", 5.0)
        with GunicornServer(
            store=tmp_path / "unused", data_dir=tmp_path / "a", workers=2, database_url=postgres_url, env=env
        ).start(migrate=False) as server:
            info = detail(server)
            assert info["target_version"] != target and versions([server]) == {info["target_version"]}
            target, generation = info["target_version"], info["generation"]

        store.delete("calc/")  # lost, snapshots and all, and the very same files copied back
        put_app(store, "calc", 5.0)
        with GunicornServer(
            store=tmp_path / "unused", data_dir=tmp_path / "d", workers=2, database_url=postgres_url, env=env
        ).start(migrate=False) as server:  # an empty cache
            info = detail(server)
            assert (info["target_version"], info["generation"]) == (target, generation)
            assert versions([server]) == {target} and not info["degraded"]
            s3.stop()  # the bucket is unreachable: what serves keeps serving, a reload says why
            assert versions([server], 20) == {info["target_version"]}
            refused = requests.post(server.url("/api/apps/calc/reload/"), json={}, auth=AUTH, timeout=90)
            assert refused.status_code == 503 and refused.headers["Retry-After"], refused.text
            assert refused.json()["code"] == "repository_unavailable"
            log = server.log() + a.log() + b.log()
            assert s3kit.CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in log + refused.text
