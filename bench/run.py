"""The benchmark driver: ``python -m bench.run`` (``make bench``).

For each workload it measures the offline limit (the compiled functions on
pre-decoded batches of 1 and 32, no HTTP), then starts every server on its own
loopback port, drives them with wrk in turn (``ROUNDS`` short runs each at each
concurrency, so the machine's drift hits all alike; the servers not being
driven are frozen with SIGSTOP), stops them, and finally
writes a table to bench/RESULTS.md (``--out``). ``--smoke`` runs our server
only, briefly, with the Python load generator (no wrk, no peers).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import time
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from aiserver import devices
from bench import check, load, models, offline, profile, report, servers, venvs

ROOT = servers.ROOT
WORK = ROOT / "bench" / ".work"
PEERS = ("aiserver", "triton", "mlserver", "kserve", "bentoml", "rayserve", "litserve", "seed")
ROUNDS = 3  # runs per server and concurrency, servers taken in turn
START_ATTEMPTS = 2  # starts of a server before it is reported as unable to run
SEED_THREADS = 32


@dataclass(frozen=True)
class Config:
    """Everything a run depends on; written into RESULTS.md."""

    workloads: tuple[str, ...]
    peers: tuple[str, ...]
    concurrency: tuple[int, ...]
    seconds: float
    threads: int | None  # None: aiserver/gunicorn.conf.py's default
    workers: int | None
    max_batch_size: int
    batch_timeout_micros: int
    loader: str  # wrk | python
    profile: bool


def main(argv: list[str] | None = None) -> int:
    config, out = _parse(argv)
    signal.signal(signal.SIGTERM, _stop)
    store = models.build_store(WORK / "store", with_face=bool({"b", "c"} & set(config.workloads)))
    results: dict = {
        "config": asdict(config),
        "machine": report.machine(),
        "command": _command(argv),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "rounds": ROUNDS,
        "tensorflow_env": devices.onednn_env(),
        "load_before": os.getloadavg(),
        "workloads": {},
    }
    for key in config.workloads:
        workload = models.WORKLOADS[key]()
        handled = key in models.HANDLER_WORKLOADS
        entry = {
            "name": workload.name,
            "app": workload.app,
            "pipeline": handled,
            "offline": offline.in_child(store, workload.app, key, seconds=min(5.0, config.seconds)),
            "servers": {},
        }
        peers = tuple(p for p in config.peers if p == "aiserver" or not handled)  # only we have handlers
        entry["servers"] = drive_all(config, store, workload, peers)
        results["workloads"][key] = entry
    results["load_after"] = os.getloadavg()
    out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    out.write_text(report.render(results))
    print(f"wrote {out}")
    return 0


def _stop(*_) -> None:
    """SIGTERM: stop every server on the way out (the ExitStacks unwind); a second SIGTERM must not cut that
    short and leave servers frozen."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.exit(143)


def drive_all(config: Config, store: Path, workload: models.Workload, peers: tuple[str, ...]) -> dict[str, dict]:
    """Start every peer at once, check each answers what aiserver answers, then drive them in turn: ROUNDS
    short runs each per concurrency. A peer that cannot run is reported with its error.

    The machine's speed drifts by tens of percent over minutes (a shared VM);
    interleaving puts that drift on every server alike, so the ratios hold.
    """
    round_seconds = config.seconds / ROUNDS
    with ExitStack() as stack:
        started: dict[str, servers.Running] = {}
        results: dict[str, dict] = {}
        for peer in peers:
            results[peer] = {"name": servers.NAMES.get(peer, peer), "runs": [], "profile": None, "error": None}
            try:
                spec = _spec(peer, config, store, workload)
                print(f"== {workload.name}: starting {spec.name}", flush=True)
                started[peer] = _start(stack, spec, log=WORK / f"{peer}-{workload.app}.log")
            except (servers.PeerUnavailable, RuntimeError, OSError) as exc:
                print(f"   {peer} cannot run: {exc}", flush=True)
                results[peer]["error"] = str(exc)
        _check_answers(started, results)
        started = {peer: server for peer, server in started.items() if not results[peer]["error"]}
        for peer, server in started.items():  # warm up, then wait frozen until its turn
            _load(config, server, connections=max(config.concurrency), seconds=min(3.0, config.seconds))
            _settle(server)
            results[peer]["memory_mib"] = round(server.memory_mib())
            server.pause()
        for connections in config.concurrency:
            if config.profile and "aiserver" in started and connections == 32:
                with _turn(started["aiserver"]):
                    results["aiserver"]["profile"] = _profiled(config, started["aiserver"])
            slow = {peer: _too_slow_for_rounds(results[peer]["runs"], round_seconds) for peer in started}
            rounds: dict[str, list[load.LoadResult]] = {peer: [] for peer in started}
            for turn in range(ROUNDS):
                for peer, server in started.items():
                    if slow[peer] and turn:
                        continue  # its one full-length run is done
                    with _turn(server):
                        rounds[peer].append(
                            _load(
                                config,
                                server,
                                connections=connections,
                                seconds=config.seconds if slow[peer] else round_seconds,
                            )
                        )
            for peer, runs in rounds.items():
                result = load.merge(runs)
                print(
                    f"   {results[peer]['name']:<18} c={connections:<3} {result.rps:8.1f} req/s  "
                    f"p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms  errors {result.errors}  "
                    f"spread {result.spread:.0%}",
                    flush=True,
                )
                results[peer]["runs"].append(asdict(result))
    return results


def _start(stack: ExitStack, spec: servers.ServerSpec, *, log: Path) -> servers.Running:
    """``spec`` running until ``stack`` closes; a server that fails to start gets START_ATTEMPTS tries in all
    (pytriton's model sometimes misses its handshake socket at start and exits: a second start works)."""
    for _ in range(START_ATTEMPTS - 1):
        try:
            return stack.enter_context(servers.running(spec, port=servers.free_port(), log=log))
        except RuntimeError as exc:
            print(f"   {spec.name} did not start ({exc}); starting it again", flush=True)
    return stack.enter_context(servers.running(spec, port=servers.free_port(), log=log))


def _check_answers(started: dict[str, servers.Running], results: dict[str, dict]) -> None:
    """Every peer must answer what aiserver answers (each result's numbers to 2 decimals); one that does not is
    reported and not measured."""
    if "aiserver" not in started or len(started) == 1:
        return  # nothing to compare with (a handler's workload: aiserver alone)
    expected = servers.predictions(*servers.post(started["aiserver"].url, started["aiserver"].workload))
    for peer, server in started.items():
        status, body = servers.post(server.url, server.workload)
        try:
            got = server.spec.answer(status, body)
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            got = f"an answer it could not read ({exc!r}): {body[:300]!r}"
        difference = check.difference(expected, got)
        if difference:
            print(f"   {peer} answers differently: {difference}", flush=True)
            results[peer]["error"] = f"wrong answer: {difference}"


def _too_slow_for_rounds(earlier_runs: list[dict], round_seconds: float) -> bool:
    """A server whose p99 is over a quarter of a round gets one full-length run instead of ROUNDS short
    ones: a short run would end with most of its requests still in flight and count none of them."""
    return any(run["p99_ms"] > round_seconds * 1000 / 4 for run in earlier_runs)


@contextmanager
def _turn(server: servers.Running) -> Iterator[None]:
    """Run ``server`` for the block, frozen before and after (the others stay frozen meanwhile)."""
    server.resume()
    try:
        yield
        _settle(server)
    finally:
        server.pause()


def _settle(server: servers.Running) -> None:
    """Wait for the requests a load left in flight (its clients gone): one more request is answered after them.
    Else a slow server carries that backlog, seconds of it, into the next measured run."""
    servers.post(server.url, server.workload, timeout=300)


def _spec(peer: str, config: Config, store: Path, workload: models.Workload) -> servers.ServerSpec:
    if peer == "aiserver":
        return servers.ours(
            store=store,
            data_dir=WORK / "data",
            workload=workload,
            threads=config.threads,
            workers=config.workers,
            batch_timeout_micros=config.batch_timeout_micros,
            max_batch_size=config.max_batch_size,
        )
    if peer == "seed":
        return servers.seed(app_dir=store / workload.app, workload=workload, threads=config.threads or SEED_THREADS)
    return servers.peer(
        peer,
        app_dir=store / workload.app,
        workload=workload,
        batch_timeout_micros=config.batch_timeout_micros,
        max_batch_size=config.max_batch_size,
    )


def _load(config: Config, server: servers.Running, *, connections: int, seconds: float) -> load.LoadResult:
    workload = server.workload
    if config.loader == "wrk":
        body = WORK / f"body-{server.pid}.bin"  # wrk reads the body from a file: one per server
        body.write_bytes(workload.body)
        return load.run_wrk(server.url, workload, connections=connections, seconds=seconds, body_file=body)
    return load.run_python(server.url, workload, connections=connections, seconds=seconds)


def _profiled(config: Config, server: servers.Running) -> dict | None:
    """py-spy samples (GIL holder only) of one of our workers under the c=32 load, summarised by step."""
    try:
        spy = venvs.ensure("tools", ROOT / "bench" / "requirements-tools.txt").parent / "py-spy"
    except venvs.VenvFailed as exc:
        print(f"   no profile: {exc}", flush=True)
        return None
    pids = server.children()
    if not spy.exists() or not pids:
        return None
    seconds = max(3, round(config.seconds))
    raw = profile.record(
        spy,
        pids[0],
        WORK / f"profile-{server.workload.app}.raw",
        seconds=seconds,
        drive=lambda: _load(config, server, connections=32, seconds=seconds + 1),
    )
    return None if raw is None else {"raw": str(raw.relative_to(ROOT)), "steps": profile.summarise(raw)}


def _command(argv: list[str] | None) -> str:
    args = sys.argv[1:] if argv is None else argv
    return shlex.join([".venv/bin/python", "-m", "bench.run", *args])


def _parse(argv: list[str] | None) -> tuple[Config, Path]:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workloads",
        default="a,b,c",
        help="a (gray64 base64 JSON), b (facescore JPEG multipart), c (the faces pipeline on a photo; aiserver only)",
    )
    parser.add_argument("--peers", default=",".join(PEERS), help=f"any of {', '.join(PEERS)}")
    parser.add_argument("--concurrency", default="1,8,32,64")
    parser.add_argument("--seconds", type=float, default=10.0, help="per concurrency level")
    parser.add_argument("--threads", type=int, help="gunicorn threads per worker (default: gunicorn.conf.py's)")
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: gunicorn.conf.py's)")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--batch-timeout-micros", type=int, default=0)
    parser.add_argument("--loader", choices=("wrk", "python"), default="wrk" if load.have_wrk() else "python")
    parser.add_argument("--profile", action="store_true", help="py-spy profile of our server at c=32")
    parser.add_argument("--smoke", action="store_true", help="our server only, workload a, python loader, 2 s")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args(argv)
    if args.smoke:
        args.workloads, args.peers, args.concurrency, args.loader = "a", "aiserver", "1,8", "python"
        args.seconds = min(args.seconds, 2.0)
    config = Config(
        workloads=tuple(args.workloads.split(",")),
        peers=tuple(args.peers.split(",")),
        concurrency=tuple(int(c) for c in args.concurrency.split(",")),
        seconds=args.seconds,
        threads=args.threads,
        workers=args.workers,
        max_batch_size=args.max_batch_size,
        batch_timeout_micros=args.batch_timeout_micros,
        loader=args.loader,
        profile=args.profile,
    )
    return config, args.out


if __name__ == "__main__":
    sys.exit(main())
