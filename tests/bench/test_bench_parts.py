"""The benchmark's own parts that decide what it reports: the answer check, the memory reading, the venvs,
and the report's verdicts for every peer."""

import os
import subprocess
import sys
import threading
import time

import pytest

from bench import ab, check, profile, report, servers, venvs

OURS = [
    [{"model": "a.keras", "value": 0.1234, "top": [{"label": "3", "score": 0.91}]}, {"model": "b.keras", "value": 2.0}]
]


def test_a_peer_answer_matches_ours_to_two_decimals_and_may_leave_fields_out():
    theirs = [[{"model": "a.keras", "value": 0.1249, "top": [{"label": "3", "score": 0.9100001}]}, {"value": 2.001}]]
    assert check.difference(OURS, theirs) is None


@pytest.mark.parametrize(
    "theirs, where",
    [
        ([[{"value": 0.2}, {"value": 2.0}]], "row 0 result 0 value"),
        ([[{"value": 0.12}]], "expected 2 results"),
        ([], "expected 1 rows"),
        ([[{"value": 0.12}, {"other": 1}]], "no field in common"),
        ([[{"value": 0.12}, {}]], "row 0 result 1"),
        ("an answer it could not read", "expected 1 rows"),
        (
            [[{"model": "a.keras", "value": 0.12, "top": [{"label": "4", "score": 0.91}]}, {"value": 2.0}]],
            "result 0 top",
        ),
    ],
)
def test_a_peer_answer_that_differs_is_named_where(theirs, where):
    assert where in check.difference(OURS, theirs)


def test_the_memory_of_a_server_counts_its_whole_process_tree():
    script = (
        "import subprocess, sys, time; b = bytearray(200 * 2**20); "
        "c = subprocess.Popen([sys.executable, '-c', 'import time; b = bytearray(100 * 2**20); time.sleep(60)'],"
        " start_new_session=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    try:
        time.sleep(2)
        spec = servers.ServerSpec("x", [], "/", None, servers.predictions)
        memory = servers.Running("http://x", proc.pid, spec).memory_mib()
        assert 300 < memory < 400, memory  # the child left the group (a session of its own) and still counts
    finally:
        servers.stop(proc)
        subprocess.run(["pkill", "-f", "b = bytearray(100"], check=False)


def test_a_peer_whose_venv_cannot_be_made_is_reported_with_pips_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(venvs, "WORK", tmp_path)
    requirements = tmp_path / "requirements-broken.txt"
    requirements.write_text("./no-such-package-folder\n")
    with pytest.raises(venvs.VenvFailed, match="no-such-package-folder"):
        venvs.ensure("broken", requirements)
    assert not (tmp_path / "venv-broken" / ".installed").exists()


def _run(connections, rps, p99):
    return {
        "connections": connections,
        "requests": 100,
        "rps": rps,
        "p50_ms": 1.0,
        "p99_ms": p99,
        "errors": 0,
        "spread": 0.1,
    }


def test_the_report_checks_every_peer_at_32_and_64_clients_and_lists_the_ones_not_measured():
    servers_ = {
        "aiserver": {"name": "aiserver", "runs": [_run(32, 900, 50), _run(64, 900, 90)], "memory_mib": 900},
        "mlserver": {"name": "MLServer", "runs": [_run(32, 500, 60), _run(64, 700, 80)], "memory_mib": 700},
        "triton": {"name": "Triton (pytriton)", "runs": [], "error": "venv failed:\nno wheel"},
    }
    entry = {
        "name": "a: test",
        "offline": [
            {"batch": 1, "images_per_s": 1000, "ms_per_call": 1.0},
            {"batch": 32, "images_per_s": 5000, "ms_per_call": 6.4},
        ],
        "servers": servers_,
    }
    text = "\n".join(report._workload("a", entry))
    assert "- PASS: c=32 req/s >= 1.5x MLServer (measured 1.80x)" in text
    assert "- MISS: c=64 req/s >= 1.5x MLServer (measured 1.29x)" in text
    assert "- MISS: c=64 p99 <= MLServer's (measured 90.0 vs 80.0 ms)" in text
    assert "- Triton (pytriton): venv failed: / no wheel" in text
    assert "| MLServer | 32 | 500.0 | 10% | 1.00 | 60.00 | 0 | 700 | 1.80x | 10% |" in text


def test_the_zipf_law_of_the_many_apps_bench():
    from bench.many_apps import zipf_weights

    weights = zipf_weights(50, 1.1)
    assert abs(weights.sum() - 1) < 1e-9 and all(weights[:-1] > weights[1:])
    assert 0.2 < weights[0] < 0.3, "the most popular of 50 apps gets about a quarter of the requests"


def test_the_ab_driver_reads_a_process_groups_cpu_and_its_environment_options():
    assert ab._env("") == {} and ab._env("A=1,B=x=y") == {"A": "1", "B": "x=y"}
    spent = ab.cpu_seconds(os.getpgrp())  # this test's own group: pytest has used some CPU by now
    sum(range(3_000_000))  # in pytest's main thread: a "loop" by the driver's kinds
    again = ab.cpu_seconds(os.getpgrp())
    assert set(spent) == set(ab.THREAD_KINDS) and 0 < spent["loop"] < again["loop"]

    spun, done = threading.Event(), threading.Event()

    def spin():  # a thread's CPU is counted while it lives, as a server's threads do
        sum(range(3_000_000))
        spun.set()
        done.wait(10)

    thread = threading.Thread(target=spin)
    thread.start()
    spun.wait(10)
    try:
        assert again["threads"] < ab.cpu_seconds(os.getpgrp())["threads"]
    finally:
        done.set()
        thread.join()


def test_the_profile_charges_each_sample_to_its_innermost_known_step(tmp_path):
    raw = tmp_path / "profile.raw"
    path = "/srv/yyai/runtime/preprocess.py"
    raw.write_text(
        f"_work (yyai/services/cpu.py:45);decode_model_pixels ({path}:151);_decode ({path}:166) 5\n"
        f"_work (yyai/services/cpu.py:45);decode_model_pixels ({path}:151);model_pixels ({path}:204) 2\n"
        "_run (yyai/runtime/batching.py:200);concatenate (yyai/runtime/feed.py:140);scale_into (x.py:3) 1\n"
        "_answer (yyai/http/fastpath.py:201);loads (json/__init__.py:346);raw_decode (json/decoder.py:353) 1\n"
        "_settle (yyai/services/cpu.py:75) 1\n"
        "<module> (somewhere.py:1) 10\n"
        "truncated line\n"
    )
    assert dict(profile.summarise(raw)) == {
        "other": 50.0,
        "image decode (cv2.imdecode)": 25.0,
        "resize/color/scale": 15.0,
        "JSON encode/decode": 5.0,
        "CPU pool (trips to and from the loop)": 5.0,
    }
