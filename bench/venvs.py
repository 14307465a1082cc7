"""The benchmark's own virtual environments: one per peer, never the server's.

:func:`ensure` makes ``bench/.work/venv-<name>`` with the interpreter .venv was
made from, installs ``requirements`` into it with pip, and adds a ``.pth``
file naming .venv's site-packages last, so a peer imports the very same
TensorFlow, Keras and ``yyai`` as the server while its own pins (numpy for
pytriton, uvloop for MLServer) win. A venv is rebuilt when its requirements
file changes (its hash is kept in ``.installed``). A failed install raises
:class:`VenvFailed` with pip's last lines: the bench reports it and goes on.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work"
SERVER_PY = ROOT / ".venv" / "bin" / "python"
INSTALL_TIMEOUT = 1800  # a peer that brings its own server binary downloads hundreds of MB


class VenvFailed(RuntimeError):
    """The venv could not be made; the message holds the reason."""


def ensure(name: str, requirements: Path) -> Path:
    """The python of ``bench/.work/venv-<name>``, installed from ``requirements`` if it is not already."""
    venv = WORK / f"venv-{name}"
    stamp = venv / ".installed"
    wanted = hashlib.sha256(requirements.read_bytes()).hexdigest()
    python = venv / "bin" / "python"
    if stamp.exists() and stamp.read_text() == wanted and python.exists():
        return python
    print(f"== installing {requirements.name} into {venv}", flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    _run([_base_python(), "-m", "venv", str(venv)])
    _run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(requirements)])
    (_site_packages(python) / "zz_aiserver_venv.pth").write_text(f"{_site_packages(SERVER_PY)}\n")
    stamp.write_text(wanted)
    return python


def _run(argv: list[str]) -> None:
    try:
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        raise VenvFailed(f"{' '.join(argv[:4])} ... took over {INSTALL_TIMEOUT} s") from exc
    if done.returncode:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-8:])
        raise VenvFailed(f"{' '.join(argv[:4])} ... exited {done.returncode}:\n{tail}")


def _base_python() -> str:
    """The interpreter .venv was made from (a venv made from a venv would chain their site-packages)."""
    return _ask(SERVER_PY, "import sys; print(sys._base_executable)") or sys.executable


def _site_packages(python: Path) -> Path:
    return Path(_ask(python, "import sysconfig; print(sysconfig.get_paths()['purelib'])"))


def _ask(python: Path, code: str) -> str:
    """What ``code`` prints, run by ``python``."""
    return subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True).stdout.strip()
