"""The benchmark keeps working: a few seconds of bench/run.py --smoke against our server only.

The smoke run uses the benchmark's own small Python load generator, so it
needs neither wrk nor the LitServe venv; it checks plumbing, not speed.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_smoke(tmp_path):
    out = tmp_path / "RESULTS.md"
    subprocess.run([sys.executable, "-m", "bench.run", "--smoke", "--out", str(out)], cwd=ROOT, check=True, timeout=600)
    results = json.loads(out.with_suffix(".json").read_text())
    runs = results["workloads"]["a"]["servers"]["aiserver"]["runs"]
    assert [run["connections"] for run in runs] == [1, 8]
    assert all(run["errors"] == 0 and run["requests"] > 0 for run in runs)
    assert {row["batch"] for row in results["workloads"]["a"]["offline"]} == {1, 32}
    assert "| aiserver | 8 |" in out.read_text()


def test_the_pipelines_offline_limit_runs_the_faces_handler_on_its_photo(faces_demo):
    from bench import models, offline

    [row] = offline.measure_pipeline(faces_demo, models.FACES_APP, models.astronaut_photo(), seconds=0.5)
    assert row.batch == 1 and row.images_per_s > 0 and row.ms_per_call > 0


@pytest.mark.slow
def test_many_apps_smoke(tmp_path):
    """bench/many_apps.py with 4 apps, a budget that holds about two, for a few seconds: every answer right."""
    out = tmp_path / "MANYAPPS.md"
    argv = ["--apps", "4", "--budget", "10M", "--workers", "1", "--clients", "2", "--seconds", "3", "--out", str(out)]
    subprocess.run([sys.executable, "-m", "bench.many_apps", *argv], cwd=ROOT, check=True, timeout=600)
    rows = [line for line in out.read_text().splitlines() if line.startswith(("| everything", "| budget"))]
    assert len(rows) == 2 and all(row.endswith("| 0 |") for row in rows), rows
