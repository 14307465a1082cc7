"""A/B of two trees of aiserver: both served at once, driven in turn with wrk, the idle one frozen.

``.venv/bin/python -m bench.ab --before /tmp/wt-before --after /tmp/wt-after --workload a --concurrency 32,64``

Make the trees with ``git worktree add --detach /tmp/wt-before <commit>`` (and the same for the other, or a
tree with uncommitted changes). Each tree runs its own code (``cwd`` and ``PYTHONPATH``) under this .venv with
gunicorn.conf.py's defaults, on bench/.work/store and a data folder of its own. The rounds alternate which
server goes first, so the machine's drift (another process's load) hits both alike; per run: req/s, p99, and
the CPU the server's processes used per request (``/proc``, every thread of every worker), which moves less
with the machine's load than req/s does, with its median split by thread: the workers' event loops, TensorFlow's
threads and every other thread (the CPU pool, the batchers). Nothing is written; the figures are printed.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Iterator

from bench import load, models, servers

WORK = servers.ROOT / "bench" / ".work"


@contextmanager
def serve(tree: Path, label: str, workload: models.Workload, env: dict[str, str]) -> Iterator[servers.Running]:
    """aiserver from ``tree`` on a free port until the block ends (its log: bench/.work/ab-<label>.log)."""
    store = models.build_store(WORK / "store", with_face=workload.key in ("b", "c"))
    own = {
        "YYAI_MODEL_STORE": str(store),
        "YYAI_DATA_DIR": str(WORK / f"ab-data-{label}"),
        "DJANGO_HTTPS": "0",
        "GUNICORN_ACCESS_LOG": "",
        "YYAI_BATCH_TIMEOUT_MICROS": "0",
        "YYAI_MAX_ROWS_PER_BATCH": "32",
        "YYAI_LOG_LEVEL": "WARNING",
        **env,
    }
    spec = servers.ServerSpec("aiserver", [], "/api/apps/{app}/predict/", workload, servers.predictions, own)
    port = servers.free_port()
    full = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "HOST": "127.0.0.1", "PORT": str(port)}
    full.update(PYTHONPATH=str(tree), **own)
    subprocess.run(
        [str(servers.VENV_PY), "manage.py", "migrate", "--noinput"],
        cwd=tree,
        env=full,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    log = WORK / f"ab-{label}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(servers.VENV_GUNICORN), "-c", "aiserver/gunicorn.conf.py"],
            cwd=tree,
            env=full,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}{spec.path.format(app=workload.app)}"
    try:
        servers._wait_ready(proc, url, workload, 300, log)
        yield servers.Running(url, proc.pid, spec)
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGCONT)
        servers.stop(proc)


THREAD_KINDS = ("loop", "tensorflow", "threads")  # a worker's main thread (its event loop), TF's, the others


def cpu_seconds(group: int) -> dict[str, float]:
    """User and system CPU so far of every process in process group ``group``, by thread kind (THREAD_KINDS; the
    master's main thread counts as a loop)."""
    ticks = dict.fromkeys(THREAD_KINDS, 0)
    for stat in Path("/proc").glob("[0-9]*/task/[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        head, fields = text.rsplit(")", 1)[0], text.rsplit(")", 1)[1].split()
        if int(fields[2]) != group:
            continue
        main, comm = stat.parent.name == stat.parent.parent.parent.name, head.split("(", 1)[1]
        kind = "loop" if main else "tensorflow" if comm.startswith("tf_") else "threads"
        ticks[kind] += int(fields[11]) + int(fields[12])
    return {kind: value / os.sysconf("SC_CLK_TCK") for kind, value in ticks.items()}


def _env(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in text.split(",") if item)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="a tree (git worktree) of the code before")
    parser.add_argument("--after", type=Path, required=True, help="a tree of the code after")
    parser.add_argument("--workload", default="a", choices=sorted(models.WORKLOADS))
    parser.add_argument("--concurrency", default="32,64")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="per run")
    parser.add_argument("--env-before", default="", help="K=V,K=V for the before server only")
    parser.add_argument("--env-after", default="", help="K=V,K=V for the after server only")
    args = parser.parse_args(argv)
    workload = models.WORKLOADS[args.workload]()
    body = WORK / "ab-body.bin"
    with ExitStack() as stack:
        running = {
            "before": stack.enter_context(serve(args.before, "before", workload, _env(args.env_before))),
            "after": stack.enter_context(serve(args.after, "after", workload, _env(args.env_after))),
        }
        answers = [servers.predictions(*servers.post(server.url, workload)) for server in running.values()]
        print("same answer:", answers[0] == answers[1], flush=True)
        body.write_bytes(workload.body)
        for server in running.values():  # warm up, then frozen until its turn
            load.run_wrk(server.url, workload, connections=64, seconds=3, body_file=body)
            servers.post(server.url, workload, timeout=300)
            server.pause()
        for connections in (int(c) for c in args.concurrency.split(",")):
            runs: dict[str, list[tuple[load.LoadResult, float]]] = {label: [] for label in running}
            for turn in range(args.rounds):
                for label in list(running)[:: 1 if turn % 2 == 0 else -1]:
                    server = running[label]
                    server.resume()
                    try:
                        before = cpu_seconds(server.pid)
                        result = load.run_wrk(
                            server.url, workload, connections=connections, seconds=args.seconds, body_file=body
                        )
                        after = cpu_seconds(server.pid)
                        per_request = {k: (after[k] - before[k]) * 1e6 / max(result.requests, 1) for k in after}
                        runs[label].append((result, per_request))
                        servers.post(server.url, workload, timeout=300)  # its backlog drained, as bench.run does
                    finally:
                        server.pause()
            for label, measured in runs.items():
                rps = [r.rps for r, _ in measured]
                used = {k: sorted(c[k] for _, c in measured) for k in THREAD_KINDS}
                print(
                    f"{args.workload} c={connections} {label:6} req/s {' / '.join(f'{x:.0f}' for x in rps)}  "
                    f"mean {sum(rps) / len(rps):.0f}  p99 {' / '.join(f'{r.p99_ms:.1f}' for r, _ in measured)} ms  "
                    f"errors {sum(r.errors for r, _ in measured)}  "
                    f"CPU ms/req {' / '.join(f'{sum(c.values()) / 1000:.2f}' for _, c in measured)}  "
                    f"median us/req {', '.join(f'{k} {v[len(v) // 2]:.0f}' for k, v in used.items())}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
