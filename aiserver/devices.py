"""GPU-safe defaults: how many gunicorn workers, which GPU each one uses, and TensorFlow's GPU memory.

By default TensorFlow reserves nearly all of every GPU it sees the moment a
process first touches one, so with one worker per CPU core the first worker
takes the whole card and the others fail or crawl. Therefore:

* memory growth is on in every process (``TF_FORCE_GPU_ALLOW_GROWTH=true``,
  set by ``aiserver/settings.py`` unless given): a process takes GPU memory as
  its models need it. Without a GPU the variable does nothing;
* when TensorFlow sees GPUs, gunicorn starts one worker per GPU instead of one
  per core (``WEB_CONCURRENCY`` still overrides), and each worker sees only its
  own GPU (``CUDA_VISIBLE_DEVICES`` set in the worker right after fork, before
  it imports TensorFlow); more workers than GPUs share them evenly.

On x86-64 CPUs oneDNN's kernels are on (``TF_ENABLE_ONEDNN_OPTS=1``, set by
``aiserver/gunicorn.conf.py`` unless given): TensorFlow turns them on by itself
only for CPUs with AVX-512, and without them convolutions ran 1.8x (a small
gray CNN) to 5x (a 350x350 RGB one) slower at batch 32 on an AVX2 AMD EPYC
(``bench/NOTES.md``, "Session 7"). Their float rounding differs from Eigen's in
the last bits. Elsewhere (ARM) TensorFlow's own choice stands.

The gunicorn master must not initialise TensorFlow (CUDA does not survive
``fork``), so :func:`visible_gpus` asks a child process, and only when a GPU
driver is present at all: a CPU host pays nothing. :func:`plan` and
:func:`assign_gpu` are the pure decisions, unit-tested without a GPU.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, MutableMapping, Sequence

MEMORY_GROWTH = "TF_FORCE_GPU_ALLOW_GROWTH"
ONEDNN = "TF_ENABLE_ONEDNN_OPTS"
# Any of these means a GPU driver is loaded (NVIDIA, AMD ROCm, WSL2's GPU bridge).
DRIVER_MARKERS = ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/kfd", "/dev/dxg")
PROBE = "import json, tensorflow as tf; print(json.dumps([d.name for d in tf.config.list_physical_devices('GPU')]))"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """What the gunicorn master starts: ``workers`` processes, each with ``tf_threads`` TensorFlow threads."""

    workers: int
    tf_threads: int
    gpu_ids: tuple[str, ...]  # CUDA_VISIBLE_DEVICES value of each GPU TensorFlow sees; empty: CPU only


def plan(
    *, gpus: Sequence[str], cores: int, requested_workers: int | None = None, cuda_visible_devices: str | None = None
) -> Plan:
    """One worker per GPU when there are GPUs, else one per core; ``requested_workers`` (WEB_CONCURRENCY) wins.

    ``gpus`` are TensorFlow's device names (``/physical_device:GPU:0``...), in
    TensorFlow's order, which follows ``cuda_visible_devices`` when that is set.
    """
    cores = max(1, cores)
    workers = requested_workers or (len(gpus) if gpus else cores)
    listed = [item.strip() for item in (cuda_visible_devices or "").split(",") if item.strip()]
    gpu_ids = tuple(listed[i] if i < len(listed) else str(i) for i in range(len(gpus)))
    return Plan(workers=workers, tf_threads=max(1, cores // workers), gpu_ids=gpu_ids)


PIN_CHOICES = ("auto", "on", "off")


def pins_workers(choice: str, *, workers: int, cpus: int, gpus: bool) -> bool:
    """Whether each worker runs on CPUs of its own (:func:`worker_cpus`), by ``YYAI_PIN_WORKERS``: ``on``,
    ``off``, or ``auto``, on for a CPU host with several workers and a CPU for each.

    A worker's threads (its event loop, CPU pool, batchers and TensorFlow's) then share their cores' caches and
    are never moved across the host: on the 2-core bench machine b served 4-6% more and a 1-6% more, every
    thread using less CPU per request (bench/NOTES.md, "Session 10"). A GPU host is left to the scheduler: its
    workers' CPU work was not measured pinned."""
    choice = choice.strip().lower() or "auto"
    if choice not in PIN_CHOICES:
        raise ValueError(f"YYAI_PIN_WORKERS={choice!r}: use one of {', '.join(PIN_CHOICES)}")
    can = hasattr(os, "sched_setaffinity")  # Linux
    if choice == "on" and not can:
        raise ValueError("YYAI_PIN_WORKERS=on: this system cannot run a process on chosen CPUs (Linux can)")
    return choice == "on" or (choice == "auto" and can and not gpus and 1 < workers <= cpus)


def usable_cpus() -> list[int]:
    """The CPUs this process may use (a container's cpuset, ``taskset``) where the system says (Linux), else
    every CPU."""
    affinity = getattr(os, "sched_getaffinity", None)
    return sorted(affinity(0)) if affinity is not None else list(range(os.cpu_count() or 1))


def worker_cpus(slot: int, workers: int, cpus: Sequence[int]) -> set[int]:
    """The CPUs of the worker in ``slot`` (its place among ``workers``: aiserver/balance.py) out of ``cpus``, the
    ones the master may use: an even share of consecutive CPUs, the first ``len(cpus) % workers`` workers one
    more (a worker's TensorFlow threads are cores / workers: :func:`plan`); with more workers than CPUs, one CPU
    each, in turn. A slot past ``workers`` (a new worker started before the one it replaces has gone) takes the
    CPUs of ``slot % workers``."""
    slot %= workers
    if workers >= len(cpus):
        return {cpus[slot % len(cpus)]}
    share, extra = divmod(len(cpus), workers)
    start = slot * share + min(slot, extra)
    return set(cpus[start : start + share + (slot < extra)])


def assign_gpu(gpu_ids: Sequence[str], in_use: Iterable[str]) -> str | None:
    """The GPU for a new worker: the one fewest live workers use (the first on a tie); None without GPUs."""
    if not gpu_ids:
        return None
    counts = {gpu: 0 for gpu in gpu_ids}
    for gpu in in_use:
        if gpu in counts:
            counts[gpu] += 1
    return min(gpu_ids, key=lambda gpu: counts[gpu])


def enable_memory_growth(environ: MutableMapping[str, str] = os.environ) -> None:
    """Let TensorFlow take GPU memory as needed instead of the whole card at start (an explicit setting wins)."""
    environ.setdefault(MEMORY_GROWTH, "true")


def driver_present(markers: Sequence[str] = DRIVER_MARKERS) -> bool:
    return any(Path(marker).exists() for marker in markers)


def visible_gpus(environ: Mapping[str, str] = os.environ, timeout: float = 120.0) -> list[str]:
    """The GPUs TensorFlow sees, asked in a child process so that this one never initialises CUDA.

    ``[]`` at once when no GPU driver is present. A probe that fails or times
    out is logged and counts as no GPU: the server still starts, on the CPU defaults.
    """
    if not driver_present():
        return []
    try:
        done = subprocess.run(
            [sys.executable, "-c", PROBE],
            env={**environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        gpus = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None
    except (subprocess.TimeoutExpired, json.JSONDecodeError, IndexError) as exc:
        log.warning("could not ask TensorFlow for GPUs (%s); using the CPU defaults", exc)
        return []
    if gpus is None:
        log.warning("could not ask TensorFlow for GPUs (exit %s): %s", done.returncode, done.stderr[-500:])
        return []
    return [str(gpu) for gpu in gpus]


def onednn_env(environ: Mapping[str, str] = os.environ, machine: str | None = None) -> dict[str, str]:
    """The TF_ENABLE_ONEDNN_OPTS a TensorFlow process runs with on a CPU of ``machine`` (``platform.machine()``
    by default): the value ``environ`` gives, else "1" on x86-64; nothing (TensorFlow's own choice) elsewhere."""
    if ONEDNN in environ:
        return {ONEDNN: environ[ONEDNN]}
    return {ONEDNN: "1"} if (machine or platform.machine()).lower() in ("x86_64", "amd64") else {}
