"""The production image (Dockerfile), checked without a container engine.

* every file a COPY names is in the build context and not excluded by
  .dockerignore, requirement files include only files copied with them, and
  every file the image's commands run (entry point, health check, gunicorn
  configuration, manage.py) is copied into it;
* the image holds the serving requirements only;
* slow: the build stage's RUN step, verbatim, succeeds in an empty folder
  holding only the files copied before it, into a throwaway virtual
  environment. The differences from a real build: the venv path (``VENV``)
  and pip's cache (on here, so a machine that ran ``make install`` reuses
  its downloads); pip reads this machine's configuration, as an image build
  reads the builder's network.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEST_ONLY = {"pytest", "pytest-django", "schemathesis", "playwright", "tritonclient"}


@dataclass
class Stage:
    name: str
    base: str
    steps: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, arguments)

    def all(self, instruction: str) -> list[str]:
        return [args for name, args in self.steps if name == instruction]


def dockerfile_stages(text: str) -> list[Stage]:
    """The Dockerfile's stages with their instructions (continuation lines joined, comments dropped)."""
    logical, pending = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") and not pending.strip():
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        if (pending + line).strip():
            logical.append((pending + line).strip())
        pending = ""
    stages: list[Stage] = []
    for line in logical:
        instruction, _, args = line.partition(" ")
        instruction, args = instruction.upper(), args.strip()
        if instruction == "FROM":
            parts = args.split()
            stages.append(Stage(name=parts[2] if len(parts) > 2 else str(len(stages)), base=parts[0]))
        elif stages:
            stages[-1].steps.append((instruction, args))
    return stages


def copy_args(args: str) -> tuple[dict[str, str], list[str], str]:
    """(flags, sources, destination) of a COPY."""
    words = json.loads(args) if args.startswith("[") else shlex.split(args)
    flags = dict(word[2:].partition("=")[::2] for word in words if word.startswith("--"))
    paths = [word for word in words if not word.startswith("--")]
    return flags, paths[:-1], paths[-1]


def ignore_patterns() -> list[re.Pattern]:
    """.dockerignore as regular expressions over context-relative paths (``**`` any depth, ``*`` one segment)."""
    patterns = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        assert not line.startswith("!"), "exceptions are not modelled here"
        regex = ""
        for token in re.split(r"(\*\*/?|\*|\?)", line.strip("/")):
            regex += {"**/": "(.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(token, re.escape(token))
        patterns.append(re.compile(regex.replace(r"\[", "[").replace(r"\]", "]").replace(r"\-", "-")))
    return patterns


def ignored(relative: str, patterns: list[re.Pattern]) -> bool:
    """Whether the path, or a folder above it, matches a .dockerignore pattern."""
    parts = PurePosixPath(relative).parts
    return any(p.fullmatch("/".join(parts[:i])) for p in patterns for i in range(1, len(parts) + 1))


def context_files(source: str, patterns: list[re.Pattern]) -> list[str]:
    """The files a COPY source sends from the build context (context-relative), after .dockerignore."""
    path = ROOT / source
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    relative = (str(f.relative_to(ROOT)) for f in files)
    return [r for r in relative if not ignored(r, patterns)]


def image_files(stage: Stage, patterns: list[re.Pattern]) -> dict[str, str]:
    """Image path -> context path of every file the stage copies from the build context."""
    workdir, mapping = "/", {}
    for instruction, args in stage.steps:
        if instruction == "WORKDIR":
            workdir = str(PurePosixPath(workdir) / args)
        if instruction != "COPY":
            continue
        flags, sources, dest = copy_args(args)
        if "from" in flags:
            continue
        target = PurePosixPath(workdir) / dest
        for source in sources:
            for relative in context_files(source, patterns):
                if (ROOT / source).is_dir():
                    mapping[str(target / PurePosixPath(relative).relative_to(source.rstrip("/")))] = relative
                elif dest.endswith("/") or len(sources) > 1:
                    mapping[str(target / PurePosixPath(relative).name)] = relative
                else:
                    mapping[str(target)] = relative
    return mapping


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return dockerfile_stages((ROOT / "Dockerfile").read_text())


def test_every_copied_file_is_in_the_build_context(stages):
    patterns = ignore_patterns()
    for stage in stages:
        for args in stage.all("COPY"):
            flags, sources, _ = copy_args(args)
            if "from" in flags:
                assert flags["from"] in {s.name for s in stages}, f"COPY --from an unknown stage: {args}"
                continue
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                assert context_files(source, patterns), f"COPY {source}: excluded by .dockerignore"


def test_requirement_files_include_only_what_is_copied_with_them(stages):
    """The bug this image had: requirements copied without a file that the install step needs."""
    build = stages[0]
    copied = set(image_files(build, ignore_patterns()).values())
    requirement_files = [f for f in copied if f.startswith("requirements")]
    assert requirement_files, "the build stage copies no requirements"
    for name in requirement_files:
        for line in (ROOT / name).read_text().splitlines():
            match = re.match(r"\s*(-r|-c|--requirement|--constraint)\s+(\S+)", line)
            if match:
                assert match[2] in copied, f"{name} includes {match[2]}, which the build stage does not copy"
    for run in build.all("RUN"):
        for word in shlex.split(run):
            if re.fullmatch(r"requirements[\w.-]*\.txt", word):
                assert word in copied, f"RUN names {word}, which the build stage does not copy"


def test_serving_requirements_only(stages):
    build = stages[0]
    copied = set(image_files(build, ignore_patterns()).values())
    assert "requirements-test.txt" not in copied
    names = set()
    for name in copied:
        if name.startswith("requirements"):
            names |= {
                re.split(r"[=<>\[ ;]", line.strip())[0].lower()
                for line in (ROOT / name).read_text().splitlines()
                if line.strip() and not line.lstrip().startswith(("#", "-"))
            }
    assert not names & TEST_ONLY, names & TEST_ONLY
    assert {"django", "gunicorn", "tensorflow-cpu", "grpcio", "tensorflow-serving-api"} <= names


def test_the_image_has_every_file_its_commands_run(stages):
    final = stages[-1]
    files = image_files(final, ignore_patterns())
    workdir = "/" + "/".join(PurePosixPath(*final.all("WORKDIR")).parts[1:]) if final.all("WORKDIR") else "/"
    commands = final.all("ENTRYPOINT") + final.all("CMD") + final.all("HEALTHCHECK")
    named = [word for args in commands for word in re.findall(r"[\w./-]+\.(?:py|sh)\b", args)]
    named += re.findall(r"[\w./-]+\.py\b", (ROOT / "deploy" / "entrypoint.sh").read_text())  # run from WORKDIR
    assert {"aiserver/gunicorn.conf.py", "/app/deploy/entrypoint.sh", "manage.py"} <= set(named)
    for path in named:
        absolute = path if path.startswith("/") else str(PurePosixPath(workdir) / path)
        assert absolute in files, f"{path} is run in the image but never copied into it"
    assert stages[-1].all("USER") and stages[-1].all("USER")[-1].split(":")[0] not in ("0", "root")
    assert {"8000", "8500"} <= set(" ".join(final.all("EXPOSE")).split())
    assert final.all("HEALTHCHECK") and "tini" in final.all("ENTRYPOINT")[0]


@pytest.mark.slow
def test_install_step_succeeds_in_an_empty_folder(stages, tmp_path):
    build = stages[0]
    folder = tmp_path / "context"
    folder.mkdir()
    for image_path, relative in image_files(build, ignore_patterns()).items():
        target = folder / PurePosixPath(image_path).relative_to(build.all("WORKDIR")[-1])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((ROOT / relative).read_bytes())
    env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONPATH")}
    for args in build.all("ENV"):
        env.update(dict(pair.split("=", 1) for pair in shlex.split(args)))
    env.pop("PIP_NO_CACHE_DIR", None)  # reuse what `make install` downloaded; the only change besides VENV
    env["VENV"] = str(tmp_path / "venv")
    python_dir = tmp_path / "bin"  # `python3` is this suite's interpreter, as the base image's would be
    python_dir.mkdir()
    (python_dir / "python3").symlink_to(getattr(sys, "_base_executable", sys.executable))
    env["PATH"] = f"{python_dir}:{env['PATH']}"
    try:
        for run in build.all("RUN"):
            done = subprocess.run(
                ["/bin/sh", "-c", run], cwd=folder, env=env, capture_output=True, text=True, timeout=600
            )
            assert done.returncode == 0, f"RUN {run}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        venv_python = str(tmp_path / "venv" / "bin" / "python")
        code = (
            "import django, rest_framework, gunicorn, uvicorn_worker, keras, grpc, tensorflow_serving.apis, cv2; "
            "import importlib.util as u; print(sorted(m for m in ('pytest', 'playwright', 'schemathesis') "
            "if u.find_spec(m)))"
        )
        done = subprocess.run([venv_python, "-c", code], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.strip() == "[]", f"test tools in the image: {done.stdout}"
    finally:
        shutil.rmtree(tmp_path / "venv", ignore_errors=True)  # 2 GB; pytest keeps its last runs' folders


@pytest.fixture
def healthz_server():
    """A stand-in server: /healthz answers 200 only for Host models.example.com, as Django's ALLOWED_HOSTS would."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            ok = self.path == "/healthz" and self.headers["Host"] == "models.example.com"
            self.send_response(200 if ok else 400)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def healthcheck(*args: str, **env: str) -> int:
    return subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "healthcheck.py"), *args], timeout=30, env={**os.environ, **env}
    ).returncode


def test_healthcheck_names_an_allowed_host(healthz_server):
    port = str(healthz_server)
    assert healthcheck(PORT=port, DJANGO_ALLOWED_HOSTS="models.example.com,localhost") == 0
    assert healthcheck(PORT=port, DJANGO_ALLOWED_HOSTS=".models.example.com") == 0
    assert healthcheck(PORT=port, DJANGO_ALLOWED_HOSTS="other.example.com") == 1
    assert healthcheck("--tcp", port) == 0
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        assert healthcheck(PORT=str(closed.getsockname()[1])) == 1
