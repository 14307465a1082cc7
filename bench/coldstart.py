"""Cold start: how long a new instance takes to serve every app, from a local store and from an S3 bucket.

``python -m bench.coldstart`` (run by ``make bench``) builds the benchmark's
store (bench/models.py) and a store of its own from it with one more app
holding a large model (``--large-mb``, 50 by default: what the bucket's transfer
and the checks cost shows), copies that into a bucket of moto's S3 server on
loopback, then starts aiserver (gunicorn, its default workers) three times,
each time on a fresh database: from the local folder; from the bucket with an
empty cache (every app fetched, checked and frozen); and again from the bucket
with the cache the previous start left (nothing downloaded again). It times
start-to-ready (``/readyz`` 200 and every worker logged "model store ready")
and reports the bytes the cache holds. Writes bench/COLDSTART.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from bench import models, servers
from tests import s3kit

READY_LINE = "model store ready in"


def start_to_ready(*, store: str, data_dir: Path, env: dict[str, str], workers: int, timeout: float = 300) -> float:
    """Seconds from starting gunicorn until every worker serves every app (migrations excluded)."""
    env = {
        **os.environ,
        **env,
        "YYAI_MODEL_STORE": store,
        "YYAI_DATA_DIR": str(data_dir),
        "DJANGO_HTTPS": "0",
        "GUNICORN_ACCESS_LOG": "",
        "WEB_CONCURRENCY": str(workers),
        "HOST": "127.0.0.1",
        "PORT": str(servers.free_port()),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    subprocess.run(
        [str(servers.VENV_PY), "manage.py", "migrate", "--noinput"],
        cwd=servers.ROOT,
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    log = data_dir / "gunicorn.log"
    started = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(servers.VENV_GUNICORN), "-c", "aiserver/gunicorn.conf.py"],
            cwd=servers.ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{env['PORT']}/readyz"
        while time.monotonic() - started < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"aiserver exited with {proc.returncode}; see {log}")
            if log.read_text(errors="replace").count(READY_LINE) >= workers and _ok(url):
                return time.monotonic() - started
            time.sleep(0.1)
        raise RuntimeError(f"aiserver not ready after {timeout:.0f} s; see {log}")
    finally:
        servers.stop(proc)


def _ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def folder_bytes(folder: Path, *, hidden: bool = True) -> int:
    """Bytes of the files in ``folder`` (``hidden=False``: not counting hidden ones, such as snapshots)."""
    return sum(
        p.stat().st_size
        for p in folder.rglob("*")
        if p.is_file() and (hidden or not any(part.startswith(".") for part in p.relative_to(folder).parts))
    )


def with_large_app(store: Path, folder: Path, *, megabytes: int) -> Path:
    """A copy of ``store`` (no snapshots) in ``folder`` with an app ``large``: one Dense layer of about
    ``megabytes`` MB of float32 weights (built once)."""
    if not (folder / "large" / "dense.keras").exists():
        import keras

        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(store, folder, ignore=shutil.ignore_patterns(".*"))
        side = int((megabytes * 2**20 / 4) ** 0.5)
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((side,), name="x"), keras.layers.Dense(side, name="y")])
        (folder / "large").mkdir()
        model.save(folder / "large" / "dense.keras")
    return folder


def measure(store: Path, *, workers: int) -> list[dict]:
    """The three starts (see the module docstring), each with its time and cache size."""
    rows = []
    with s3kit.running() as s3, tempfile.TemporaryDirectory(prefix="coldstart-") as tmp:
        bucket = s3.bucket()
        apps = sorted(p.name for p in store.iterdir() if p.is_dir() and not p.name.startswith("."))
        for app in apps:
            bucket.put_tree(store / app, app)
        work = Path(tmp)
        for label, location, data, env in (
            ("local folder", str(store), work / "local", {}),
            ("S3, empty cache", bucket.url, work / "s3", s3.env),
            ("S3, warm cache (restart)", bucket.url, work / "s3", s3.env),
        ):
            if label != "S3, warm cache (restart)":
                shutil.rmtree(data, ignore_errors=True)
            data.mkdir(parents=True, exist_ok=True)
            (data / "aiserver.sqlite3").unlink(missing_ok=True)  # a fresh database: no targets to follow
            seconds = start_to_ready(store=location, data_dir=data, env=env, workers=workers)
            cache = data / "model-cache"
            rows.append(
                {
                    "start": label,
                    "apps": len(apps),
                    "seconds": round(seconds, 2),
                    "store_mb": round(folder_bytes(store, hidden=False) / 2**20, 2),
                    "cache_mb": round(folder_bytes(cache) / 2**20, 2) if cache.exists() else 0.0,
                }
            )
    return rows


def render(rows: list[dict], *, workers: int, command: str) -> str:
    lines = [
        "# Cold start of a new instance",
        "",
        f"Command: `{command}`; {workers} gunicorn workers, "
        f"each loading every app; moto's S3 server on loopback (no network latency: a real bucket adds its "
        f"transfer time).",
        "",
        "| start | apps | store MB | cache MB after | start to ready s |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {r['start']} | {r['apps']} | {r['store_mb']} | {r['cache_mb']} | {r['seconds']} |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.coldstart", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--large-mb", type=int, default=50, help="the large app's model size")
    parser.add_argument("--out", type=Path, default=servers.ROOT / "bench" / "COLDSTART.md")
    args = parser.parse_args(argv)
    work = servers.ROOT / "bench" / ".work"
    store = with_large_app(models.build_store(work / "store"), work / "coldstart-store", megabytes=args.large_mb)
    rows = measure(store, workers=args.workers)
    args.out.write_text(render(rows, workers=args.workers, command="python -m bench.coldstart " + " ".join(argv or [])))
    print(args.out.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
