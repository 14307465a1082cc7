"""Validate a candidate version folder in a child process, before any server process opens it.

``validate_version(folder, app_dir=...)`` runs ``python -m yyai.runtime.validate``
with an address-space limit and a timeout. The child loads every model exactly
as serving would (safe mode, compile, warm-up), checks that the models fit each
other and the manifest, and prints one JSON line. A crash, an out-of-memory or
a hang in the child is a refused upload, never a damaged server.

The child runs an upload: it gets none of the server's environment (no secret
key, no database URL; :data:`CHILD_ENVIRONMENT` only), ignores ``PYTHON*``
variables and the user's site packages, and loads in safe mode whatever the
app's manifest says about ``trust_code``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

from .errors import ModelLoadError, ServingError
from .limits import (
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_VALIDATE_MEMORY_BYTES,
    DEFAULT_VALIDATE_TIMEOUT_SECONDS,
)

# What the child may see of this process's environment: paths, locale and TensorFlow's own knobs.
CHILD_ENVIRONMENT = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "TF_CPP_MIN_LOG_LEVEL",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "OMP_NUM_THREADS",
    "CUDA_VISIBLE_DEVICES",
)


def validate_version(
    folder: Path,
    *,
    app_dir: Path,
    timeout: float = DEFAULT_VALIDATE_TIMEOUT_SECONDS,
    memory_bytes: int = DEFAULT_VALIDATE_MEMORY_BYTES,
    max_file_bytes: int | None = None,
    isolated: bool = True,
) -> list[dict]:
    """Describe the models of ``folder`` (one dict each); ModelLoadError with the reason if invalid.

    ``isolated=False`` validates in this process (no limits): for tests and trusted tooling only.
    """
    if not isolated:
        return _answer(folder, _check(folder, app_dir, max_file_bytes))
    args = [sys.executable, "-E", "-s", "-m", "yyai.runtime.validate", str(folder), str(app_dir)]
    if max_file_bytes is not None:
        args.append(str(max_file_bytes))

    def limit_memory():  # runs in the child, before exec
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))

    try:
        done = subprocess.run(
            args,
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=limit_memory,
            cwd=Path(__file__).resolve().parents[2],
            env={k: v for k, v in os.environ.items() if k in CHILD_ENVIRONMENT},
        )
    except subprocess.TimeoutExpired:
        raise ModelLoadError(folder, f"validation took longer than {timeout:g} s and was stopped") from None
    lines = done.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict):
        tail = " ".join(done.stderr.split()[-30:])
        reason = (
            "ran out of its memory limit"
            if "MemoryError" in done.stderr or "bad_alloc" in done.stderr
            else (f"crashed (exit {done.returncode})")
        )
        raise ModelLoadError(folder, f"validation {reason}: {tail[-400:]}")
    return _answer(folder, answer)


def _answer(folder: Path, answer: dict) -> list[dict]:
    if not answer.get("ok"):
        raise ModelLoadError(answer.get("path") or folder, answer.get("error", "invalid"))
    return answer["models"]


def _check(folder: Path, app_dir: Path, max_file_bytes: int | None) -> dict:
    """Load the version in this process; the child's whole job."""
    from .manifest import load_manifest
    from .source import VersionCandidate, model_files
    from .version_models import load_version_models, manifest_for

    try:
        spec = dataclasses.replace(manifest_for(app_dir, folder, base=load_manifest(app_dir)), trust_code=False)
        files = model_files(folder)
        if not files:
            return {"ok": False, "error": "no model files (.h5, .keras) in the version"}
        candidate = VersionCandidate(
            id=folder.name, path=str(folder), files=tuple(map(str, files)), numbered=True, complete=True
        )
        models = load_version_models(spec, candidate, max_file_bytes=max_file_bytes or DEFAULT_MAX_FILE_BYTES)
    except ModelLoadError as exc:
        return {"ok": False, "error": exc.reason, "path": Path(exc.path).name}
    except ServingError as exc:
        return {"ok": False, "error": exc.message}
    described = [m.describe() for m in models]
    for model in models:
        model.close()
    return {"ok": True, "models": described}


if __name__ == "__main__":
    folder_arg, app_arg, *rest = sys.argv[1:]
    print(json.dumps(_check(Path(folder_arg), Path(app_arg), int(rest[0]) if rest else None)), flush=True)
