"""GPU-safe defaults (aiserver/devices.py): the decisions, and their wiring into gunicorn. No GPU is needed or used."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aiserver import devices

ROOT = Path(__file__).resolve().parents[2]
TWO_GPUS = ["/physical_device:GPU:0", "/physical_device:GPU:1"]


def test_cpu_host_one_worker_per_core():
    assert devices.plan(gpus=[], cores=8) == devices.Plan(workers=8, tf_threads=1, gpu_ids=())


def test_gpu_host_one_worker_per_gpu():
    plan = devices.plan(gpus=TWO_GPUS, cores=16)
    assert plan == devices.Plan(workers=2, tf_threads=8, gpu_ids=("0", "1"))


def test_web_concurrency_wins():
    assert devices.plan(gpus=TWO_GPUS, cores=16, requested_workers=4).workers == 4
    assert devices.plan(gpus=[], cores=2, requested_workers=1) == devices.Plan(workers=1, tf_threads=2, gpu_ids=())


def test_gpu_ids_follow_cuda_visible_devices():
    # TensorFlow's GPU:0 and GPU:1 are the physical GPUs 2 and 3 when CUDA_VISIBLE_DEVICES="2,3"
    assert devices.plan(gpus=TWO_GPUS, cores=4, cuda_visible_devices="2, 3").gpu_ids == ("2", "3")
    assert devices.plan(gpus=TWO_GPUS, cores=4, cuda_visible_devices="GPU-8f1c,GPU-77aa").gpu_ids == (
        "GPU-8f1c",
        "GPU-77aa",
    )


def test_assign_gpu_spreads_workers_and_refills_a_dead_workers_gpu():
    gpus = ("0", "1")
    assert devices.assign_gpu(gpus, []) == "0"
    assert devices.assign_gpu(gpus, ["0"]) == "1"
    assert devices.assign_gpu(gpus, ["0", "1", "0"]) == "1"
    assert devices.assign_gpu(gpus, ["1"]) == "0"  # the worker on GPU 0 died: its replacement takes GPU 0
    assert devices.assign_gpu((), ["0"]) is None


def test_memory_growth_on_unless_set():
    env = {}
    devices.enable_memory_growth(env)
    assert env == {"TF_FORCE_GPU_ALLOW_GROWTH": "true"}
    env = {"TF_FORCE_GPU_ALLOW_GROWTH": "false"}
    devices.enable_memory_growth(env)
    assert env["TF_FORCE_GPU_ALLOW_GROWTH"] == "false"


def test_no_driver_no_probe(monkeypatch):
    monkeypatch.setattr(devices, "DRIVER_MARKERS", ("/nonexistent/nvidia",))
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("probed TensorFlow without a GPU driver"))
    assert devices.visible_gpus() == []


PLANNED = (
    "WEB_CONCURRENCY",
    "YYAI_PIN_WORKERS",
    "CUDA_VISIBLE_DEVICES",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "TF_ENABLE_ONEDNN_OPTS",
)
GUNICORN_CONF = """
import json, os, runpy, types
from aiserver import balance, devices
devices.visible_gpus = lambda: {gpus!r}
os.sched_getaffinity = lambda pid: set(range({cores}))
placed = []
os.sched_setaffinity = lambda pid, cpus: placed.append(sorted(cpus))
conf = runpy.run_path("aiserver/gunicorn.conf.py")
server = types.SimpleNamespace(WORKERS={{}}, log=types.SimpleNamespace(info=lambda *a: None))
conf["on_starting"](server)
pinned, cpus = [], []
for pid in range(conf["workers"]):
    worker = types.SimpleNamespace(pid=pid)
    conf["pre_fork"](server, worker)
    server.WORKERS[pid] = worker
    conf["post_fork"](server, worker)
    pinned.append(os.environ.get("CUDA_VISIBLE_DEVICES"))
    cpus.append(placed.pop() if placed else None)
    balance._table.slot = None  # the next worker is another process: the slot it takes is its own
    balance._table.pids[len(cpus) - 1] = os.getpid()  # this one lives on in its slot
print(json.dumps({{"workers": conf["workers"], "pinned": pinned, "threads": os.environ["TF_NUM_INTRAOP_THREADS"],
                  "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS"), "cpus": cpus}}))
"""


def conf_process(tmp_path, gpus, cores, **env) -> subprocess.CompletedProcess:
    """aiserver/gunicorn.conf.py run on a host of ``cores`` CPUs and ``gpus``, its workers started, in a process
    of its own (the planned variables taken out of this environment, ``env`` added)."""
    clean = {key: value for key, value in os.environ.items() if key not in PLANNED}
    return subprocess.run(
        [sys.executable, "-c", GUNICORN_CONF.format(gpus=gpus, cores=cores)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, "YYAI_DATA_DIR": str(tmp_path), **env},
    )


def run_conf(tmp_path, gpus, cores, **env) -> dict:
    """What :func:`conf_process` decided."""
    done = conf_process(tmp_path, gpus, cores, **env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize(
    "gpus, cores, expected",
    [
        (TWO_GPUS, 4, {"workers": 2, "pinned": ["0", "1"], "threads": "2", "cpus": [None, None]}),
        ([], 4, {"workers": 4, "pinned": [None] * 4, "threads": "1", "cpus": [[0], [1], [2], [3]]}),
    ],
)
def test_gunicorn_conf_uses_the_plan(tmp_path, gpus, cores, expected):
    expected = {**expected, "onednn": devices.onednn_env({}).get("TF_ENABLE_ONEDNN_OPTS")}
    assert run_conf(tmp_path, gpus, cores) == expected


@pytest.mark.parametrize(
    "env, cpus",
    [
        ({"WEB_CONCURRENCY": "2"}, [[0, 1, 2], [3, 4, 5]]),
        ({"YYAI_PIN_WORKERS": "off"}, [None] * 6),
        ({"WEB_CONCURRENCY": "1"}, [None]),
    ],
)
def test_gunicorn_conf_gives_each_worker_its_cpus_unless_told_not_to(tmp_path, env, cpus):
    assert run_conf(tmp_path, [], 6, **env)["cpus"] == cpus


def test_gunicorn_conf_refuses_an_unknown_pinning_choice(tmp_path):
    done = conf_process(tmp_path, [], 2, YYAI_PIN_WORKERS="sometimes")
    assert done.returncode != 0 and "YYAI_PIN_WORKERS='sometimes': use one of auto, on, off" in done.stderr


@pytest.mark.parametrize(
    "workers, cpus, expected",
    [
        (2, [0, 1], [{0}, {1}]),
        (2, [4, 5, 6, 7, 8], [{4, 5, 6}, {7, 8}]),  # a cpuset of five: the first worker one more
        (3, [0, 1], [{0}, {1}, {0}]),  # more workers than CPUs: one each, in turn
        (1, [0, 1, 2], [{0, 1, 2}]),
    ],
)
def test_each_worker_gets_an_even_share_of_consecutive_cpus(workers, cpus, expected):
    assert [devices.worker_cpus(slot, workers, cpus) for slot in range(workers)] == expected
    assert devices.worker_cpus(workers, workers, cpus) == expected[0]  # a replacement started early shares slot 0's


@pytest.mark.parametrize(
    "choice, workers, cpus, gpus, pinned",
    [
        ("auto", 2, 2, False, True),
        ("auto", 1, 2, False, False),  # one worker: nothing to keep apart
        ("auto", 4, 2, False, False),  # more workers than CPUs
        ("auto", 2, 8, True, False),  # a GPU host
        ("on", 4, 2, True, True),
        ("off", 2, 2, False, False),
        (" ON ", 2, 2, False, True),
        ("", 2, 2, False, True),
    ],
)
def test_pinning_is_on_for_a_cpu_host_with_a_cpu_per_worker(choice, workers, cpus, gpus, pinned):
    assert devices.pins_workers(choice, workers=workers, cpus=cpus, gpus=gpus) is pinned


def test_gunicorn_conf_keeps_a_given_onednn_setting(tmp_path):
    assert run_conf(tmp_path, [], 2, TF_ENABLE_ONEDNN_OPTS="0")["onednn"] == "0"


@pytest.mark.parametrize("machine, value", [("x86_64", "1"), ("AMD64", "1"), ("aarch64", None), ("arm64", None)])
def test_onednn_on_for_every_x86_cpu_and_left_to_tensorflow_elsewhere(machine, value):
    assert devices.onednn_env({}, machine) == ({"TF_ENABLE_ONEDNN_OPTS": value} if value else {})
    assert devices.onednn_env({"TF_ENABLE_ONEDNN_OPTS": "0"}, machine) == {"TF_ENABLE_ONEDNN_OPTS": "0"}


def test_settings_turn_memory_growth_on(tmp_path):
    """Every process that serves models (gunicorn workers, grpcserve, the upload validator) imports settings first."""
    env = {key: value for key, value in os.environ.items() if key != "TF_FORCE_GPU_ALLOW_GROWTH"}
    code = "import os, aiserver.settings; print(os.environ['TF_FORCE_GPU_ALLOW_GROWTH'])"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "YYAI_DATA_DIR": str(tmp_path), "DJANGO_SECRET_KEY": "k" * 50},
    )
    assert done.stdout.strip() == "true", done.stderr
