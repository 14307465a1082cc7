"""Load generators: ``wrk`` (the benchmark) and a small Python client (smoke test, no wrk needed).

Both keep ``connections`` persistent connections busy for ``seconds``, every
request POSTing the workload's body, and report the same :class:`LoadResult`.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bench.models import Workload

LUA = Path(__file__).resolve().parent / "post.lua"
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass(frozen=True)
class LoadResult:
    """One load run: throughput, latency percentiles (ms) and failed requests."""

    connections: int
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx answers plus socket errors and timeouts
    spread: float = 0.0  # of merged runs: (highest - lowest req/s) / mean


def merge(runs: list[LoadResult]) -> LoadResult:
    """One result from equally long runs: summed requests and errors, mean req/s and its spread, median p50,
    worst p99.

    A run that completed no request (a server slower than the run) has no latencies to count.
    """
    timed = [r for r in runs if r.requests] or runs
    p50s = sorted(r.p50_ms for r in timed)
    rps = sum(r.rps for r in runs) / len(runs)
    spread = (max(r.rps for r in runs) - min(r.rps for r in runs)) / rps if rps else 0.0
    return LoadResult(
        connections=runs[0].connections,
        requests=sum(r.requests for r in runs),
        rps=rps,
        p50_ms=p50s[len(p50s) // 2],
        p99_ms=max(r.p99_ms for r in timed),
        errors=sum(r.errors for r in runs),
        spread=spread,
    )


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(url: str, workload: Workload, *, connections: int, seconds: float, body_file: Path) -> LoadResult:
    """Drive ``url`` with wrk (one thread; wrk's C event loop is far from the limit here)."""
    body_file.write_bytes(workload.body)
    env = {**os.environ, "BENCH_BODY": str(body_file), "BENCH_CONTENT_TYPE": workload.content_type}
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        url,
    ]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
    return parse_wrk(out, connections)


def parse_wrk(out: str, connections: int) -> LoadResult:
    """Read requests, req/s, p50, p99 and errors from ``wrk --latency`` output."""

    def latency(pct: str) -> float:
        value, unit = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M).groups()
        return float(value) * _UNITS[unit]

    requests = int(re.search(r"(\d+) requests in", out).group(1))
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors += int(non_2xx.group(1)) if non_2xx else 0
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return LoadResult(connections, requests, rps, latency("50"), latency("99"), errors)


def run_python(url: str, workload: Workload, *, connections: int, seconds: float) -> LoadResult:
    """The same measurement with ``connections`` Python threads, one keep-alive connection each."""
    parts = urlsplit(url)
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds
    headers = {"Content-Type": workload.content_type}

    def client() -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        mine, failed = [], 0
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            try:
                conn.request("POST", parts.path, body=workload.body, headers=headers)
                response = conn.getresponse()
                response.read()
                ok = 200 <= response.status < 300
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
            if ok:
                mine.append((time.perf_counter() - started) * 1000)
            else:
                failed += 1
        conn.close()
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    began = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    latencies.sort()
    done = len(latencies)

    def pct(p: float) -> float:
        return latencies[min(done - 1, int(p * done))] if done else float("nan")

    return LoadResult(connections, done + errors[0], done / elapsed, pct(0.50), pct(0.99), errors[0])
