"""Many apps on one host: a memory budget against everything loaded, under requests spread by a Zipf law.

``python -m bench.many_apps`` (run by ``make bench``) builds a store of ``--apps``
small apps (50 by default; app ``k`` answers ``k * sum(x)`` through a hidden layer
of 4096 units, about 1 MiB of weights), then starts aiserver (gunicorn,
``--workers``) on fresh databases: once with everything loaded (no budget, as
before), then once per ``YYAI_MEMORY_BUDGET`` of ``--budget`` (per worker,
comma-separated). Each time ``--clients`` threads send predicts for
``--seconds``, each to an app drawn from a Zipf law (rank k with weight 1/k^s,
``--zipf``), on kept-alive connections. A request whose answer says
``Server-Timing: load;dur=`` waited for its app's load: it is counted as cold,
the others as warm. Every answer is checked against its app's closed form.
Reports start-to-ready, throughput, p50/p99 of warm and cold requests,
evictions and loads on demand (from /metrics) and the memory of the whole host
(PSS of every server process). Writes bench/MANYAPPS.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import shlex
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import report, servers
from bench.models import Workload
from tests import modelkit

ROOT = servers.ROOT
OUT = ROOT / "bench" / "MANYAPPS.md"
WORK = ROOT / "bench" / ".work" / "many-apps"
BODY = json.dumps({"instances": np.ones((1, *modelkit.SHAPE)).tolist()}).encode()  # sum(x) = 64


def build_store(store: Path, apps: int) -> list[str]:
    """``apps`` apps ``app01``... (kept if already built); their names, most popular first."""
    names = [f"app{k:02d}" for k in range(1, apps + 1)]
    for k, name in enumerate(names, start=1):
        if not (store / name / "m.h5").exists():
            modelkit.wide_regressor(store / name / "m.h5", weight=float(k), hidden=4096)
    return names


def zipf_weights(count: int, s: float) -> np.ndarray:
    """The share of requests of each rank under a Zipf law of exponent ``s``."""
    weights = 1.0 / np.arange(1, count + 1) ** s
    return weights / weights.sum()


@dataclass
class Sample:
    app: int  # rank, from 1
    ms: float
    cold: bool
    ok: bool


def drive(port: int, names: list[str], *, clients: int, seconds: float, s: float) -> list[Sample]:
    """``clients`` threads sending predicts for ``seconds``, apps drawn by the Zipf law; every answer checked."""
    weights = zipf_weights(len(names), s)
    samples: list[Sample] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(seed: int) -> None:
        rng = np.random.default_rng(seed)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        mine = []
        while time.monotonic() < stop:
            rank = int(rng.choice(len(names), p=weights)) + 1
            started = time.perf_counter()
            connection.request(
                "POST", f"/api/apps/{names[rank - 1]}/predict/", BODY, {"Content-Type": "application/json"}
            )
            response = connection.getresponse()
            body = response.read()
            ms = (time.perf_counter() - started) * 1000
            ok = response.status == 200 and abs(json.loads(body)["predictions"][0][0]["value"] - 64.0 * rank) < 0.05
            mine.append(Sample(rank, ms, "load;dur=" in (response.getheader("Server-Timing") or ""), ok))
        connection.close()
        with lock:
            samples.extend(mine)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return samples


def metric_sum(text: str, name: str) -> float:
    return sum(float(v) for v in re.findall(rf"^{name}(?:\{{[^}}]*\}})? ([0-9.e+-]+)$", text, re.M))


def run(names: list[str], *, store: Path, budget: str | None, args) -> dict:
    """One configuration: start the server, drive it, read its metrics and memory."""
    data = Path(tempfile.mkdtemp(prefix="many-apps-", dir=WORK))
    workload = Workload("m", "many apps", names[0], "application/json", BODY, b"")
    spec = servers.ours(
        store=store, data_dir=data, workload=workload, batch_timeout_micros=0, max_batch_size=32, workers=args.workers
    )
    if budget:
        spec.env["YYAI_MEMORY_BUDGET"] = budget
    port = servers.free_port()
    started = time.monotonic()
    with servers.running(spec, port=port, log=data / "server.log") as server:
        ready = time.monotonic() - started
        samples = drive(port, names, clients=args.clients, seconds=args.seconds, s=args.zipf)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
        memory = server.memory_mib()
    warm = [x.ms for x in samples if not x.cold]
    cold = [x.ms for x in samples if x.cold]
    return {
        "config": f"budget {budget} per worker" if budget else "everything loaded",
        "ready_s": ready,
        "requests": len(samples),
        "failed": sum(not x.ok for x in samples),
        "rps": len(samples) / args.seconds,
        "all": _percentiles([x.ms for x in samples]),
        "warm": _percentiles(warm),
        "cold": _percentiles(cold),
        "cold_count": len(cold),
        "evictions": metric_sum(text, "yyai_app_evictions_total"),
        "loads": metric_sum(text, "yyai_app_loads_on_demand_total"),
        "resident": metric_sum(text, "yyai_app_resident") / args.workers,
        "model_mib": metric_sum(text, "yyai_app_memory_bytes") / 2**20,
        "host_mib": memory,
    }


def _percentiles(values: list[float]) -> tuple[float, float] | None:
    return (float(np.percentile(values, 50)), float(np.percentile(values, 99))) if values else None


def render(rows: list[dict], args, command: str) -> str:
    def pair(value) -> str:
        return "-" if value is None else f"{value[0]:.1f} / {value[1]:.1f}"

    lines = [
        "# Many apps on one host: a memory budget against everything loaded",
        "",
        f"`{command}` on {report.machine()['cpu']} ({report.machine()['cores']} cores), "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}. {args.apps} apps of about 1 MiB of weights each, {args.workers} "
        f"workers, {args.clients} clients on kept-alive connections for {args.seconds:.0f} s, apps drawn by a Zipf "
        f"law of exponent {args.zipf} (the most popular app gets {zipf_weights(args.apps, args.zipf)[0]:.0%} of "
        "the requests). Cold: the request waited for its app's load (its answer's `Server-Timing: load`). "
        "Latencies in ms, p50 / p99. Memory: PSS of every server process (the host's share).",
        "",
        "| configuration | start to ready (s) | apps loaded per worker | req/s | all | warm | cold (count) "
        "| evictions | loads on demand | model memory, all workers (MiB) | host memory (MiB) | failed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['config']} | {r['ready_s']:.1f} | {r['resident']:.0f} | {r['rps']:.0f} | {pair(r['all'])} "
            f"| {pair(r['warm'])} | {pair(r['cold'])} ({r['cold_count']}) | {r['evictions']:.0f} "
            f"| {r['loads']:.0f} | {r['model_mib']:.0f} | {r['host_mib']:.0f} | {r['failed']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=50)
    parser.add_argument("--budget", default="20M,45M", help="YYAI_MEMORY_BUDGET of each budgeted run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--zipf", type=float, default=1.1)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    WORK.mkdir(parents=True, exist_ok=True)
    store = WORK / f"store-{args.apps}"
    names = build_store(store, args.apps)
    budgets = [None, *(b.strip() for b in args.budget.split(",") if b.strip())]
    rows = [run(names, store=store, budget=budget, args=args) for budget in budgets]
    command = shlex.join(["python", "-m", "bench.many_apps", *(argv if argv is not None else sys.argv[1:])])
    args.out.write_text(render(rows, args, command))
    print(args.out.read_text())
    return 1 if any(r["failed"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
