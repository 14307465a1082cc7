"""Validate a candidate version folder in a child process, before any server process opens it.

``validate_version(folder, app_dir=...)`` runs ``python -m yyai.runtime.validate``
with an address-space limit and a timeout. The child loads every model exactly
as serving would (safe mode, compile, warm-up), checks that the models fit each
other and the manifest, and prints one JSON line. A crash, an out-of-memory or
a hang in the child is a refused upload, never a damaged server.
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

from .errors import ModelLoadError, ServingError

DEFAULT_TIMEOUT_SECONDS = 300.0
DEFAULT_MEMORY_BYTES = 4 << 30


def validate_version(folder: Path, *, app_dir: Path, timeout: float = DEFAULT_TIMEOUT_SECONDS,
                     memory_bytes: int = DEFAULT_MEMORY_BYTES, max_file_bytes: int | None = None,
                     isolated: bool = True) -> list[dict]:
    """Describe the models of ``folder`` (one dict each); ModelLoadError with the reason if invalid.

    ``isolated=False`` validates in this process (no limits): for tests and trusted tooling only.
    """
    if not isolated:
        return _answer(folder, _check(folder, app_dir, max_file_bytes))
    args = [sys.executable, "-m", "yyai.runtime.validate", str(folder), str(app_dir)]
    if max_file_bytes is not None:
        args.append(str(max_file_bytes))

    def limit_memory():  # runs in the child, before exec
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))

    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, preexec_fn=limit_memory,
                              cwd=Path(__file__).resolve().parents[2])
    except subprocess.TimeoutExpired:
        raise ModelLoadError(folder, f"validation took longer than {timeout:g} s and was stopped") from None
    lines = done.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict):
        tail = " ".join(done.stderr.split()[-30:])
        reason = "ran out of its memory limit" if "MemoryError" in done.stderr or "bad_alloc" in done.stderr else (
            f"crashed (exit {done.returncode})")
        raise ModelLoadError(folder, f"validation {reason}: {tail[-400:]}")
    return _answer(folder, answer)


def _answer(folder: Path, answer: dict) -> list[dict]:
    if not answer.get("ok"):
        raise ModelLoadError(answer.get("path") or folder, answer.get("error", "invalid"))
    return answer["models"]


def _check(folder: Path, app_dir: Path, max_file_bytes: int | None) -> dict:
    """Load the version in this process; the child's whole job."""
    from .loader import DEFAULT_MAX_FILE_BYTES, load_model_file
    from .manifest import load_manifest
    from .model_util import check_compatible, manifest_for
    from .source import model_files

    try:
        spec = manifest_for(app_dir, folder, base=load_manifest(app_dir))
        files = model_files(folder)
        if not files:
            return {"ok": False, "error": "no model files (.h5, .keras) in the version"}
        models = tuple(load_model_file(f, trust_code=spec.trust_code,
                                       max_file_bytes=max_file_bytes or DEFAULT_MAX_FILE_BYTES) for f in files)
        check_compatible(spec, models)
    except ModelLoadError as exc:
        return {"ok": False, "error": exc.reason, "path": Path(exc.path).name}
    except ServingError as exc:
        return {"ok": False, "error": exc.message}
    return {"ok": True, "models": [m.describe() for m in models]}


if __name__ == "__main__":
    folder_arg, app_arg, *rest = sys.argv[1:]
    print(json.dumps(_check(Path(folder_arg), Path(app_arg), int(rest[0]) if rest else None)), flush=True)
