"""Deployment size: `sam build` into a temporary folder, then each function's own code (the bytes of its
build artifact folder, and of that folder zipped as Lambda receives it) and the layer's size and packages.

Goals: each function's own code at most 50 KB; the layer carries no boto3/botocore (the Lambda runtime
provides them, and a second copy would only add size and cold-start time). Powertools and pydantic_core are in
the layer on purpose, at the versions the tests run (layers/session_core/requirements.txt).
Needs the SAM CLI (.tools/bin/sam, or $SAM, or sam on PATH: `make check-template` installs it) and a
python3.13 on PATH or under pyenv, as scripts/check-template.sh does.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

from local_stack.template import SERVERLESS_FUNCTION, SERVERLESS_LAYER, Template

STACK = False  # needs no local stack
ROOT = Path(__file__).resolve().parents[1]
FUNCTION_GOAL_BYTES = 50 * 1024
FORBIDDEN = ("boto3", "botocore", "s3transfer")


def _sam() -> str:
    for candidate in (os.environ.get("SAM"), str(ROOT / ".tools" / "bin" / "sam"), shutil.which("sam")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError("the SAM CLI is not installed: run `make check-template` (it installs .tools)")


def _python313_dir() -> str:
    candidates = [shutil.which("python3.13")]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted(str(p) for p in pyenv_root.glob("versions/3.13*/bin/python3.13"))
    for candidate in filter(None, candidates):
        # A pyenv shim for an unselected version exists but fails, so run it to be sure.
        if subprocess.run([candidate, "-c", ""], capture_output=True, check=False).returncode == 0:
            return str(Path(subprocess.run([candidate, "-c", "import sys; print(sys.executable)"],
                                           capture_output=True, text=True, check=True).stdout.strip()).parent)
    raise RuntimeError("no python3.13 on PATH or under pyenv (sam build needs one)")


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def zipped_bytes(folder: Path) -> int:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder))
    return buffer.getbuffer().nbytes


def packages(layer: Path) -> list[str]:
    """Top-level importable names in the layer's python/ folder."""
    names = set()
    for entry in (layer / "python").iterdir():
        if entry.name.endswith((".dist-info", ".egg-info")) or entry.name == "__pycache__":
            continue
        if entry.is_dir() or entry.suffix in (".py", ".so"):
            names.add(entry.name.split(".")[0])
    return sorted(names)


def _kb(value: int) -> float:
    return value / 1024


def run(info: dict | None = None) -> list[dict]:
    template = Template.load(ROOT / "template.yaml")
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "PATH": f"{_python313_dir()}{os.pathsep}{os.environ['PATH']}"}
    with tempfile.TemporaryDirectory(prefix="bench-size-") as tmp:
        build = Path(tmp) / "build"
        proc = subprocess.run([_sam(), "build", "--template-file", "template.yaml", "--no-cached",
                               "--build-dir", str(build), "--cache-dir", str(Path(tmp) / "cache")],
                              cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        if proc.returncode:
            raise RuntimeError(f"sam build failed: {(proc.stdout + proc.stderr)[-1500:]}")
        rows = []
        for lid in sorted(template.resources_of_type(SERVERLESS_FUNCTION)):
            size, zipped = folder_bytes(build / lid), zipped_bytes(build / lid)
            files = sorted(str(p.relative_to(build / lid)) for p in (build / lid).rglob("*") if p.is_file())
            rows.append({"measure": f"size {lid}: own code ({_kb(zipped):.1f} KB zipped)", "unit": "KB",
                         "p50": _kb(size), "goal": "<= 50 KB", "met": size <= FUNCTION_GOAL_BYTES,
                         "bytes": size, "zipped_bytes": zipped, "files": files})
        for lid in sorted(template.resources_of_type(SERVERLESS_LAYER)):
            layer = build / lid
            found = packages(layer)
            forbidden = [p for p in found if p in FORBIDDEN]
            own = layer / "python" / "session_core"
            rows.append({
                "measure": f"size {lid}: layer ({_kb(zipped_bytes(layer)) / 1024:.1f} MB zipped; "
                           f"session_core {_kb(folder_bytes(own)):.0f} KB); packages: {', '.join(found)}; "
                           f"boto3/botocore: {', '.join(forbidden) or 'none'}",
                "unit": "KB", "p50": _kb(folder_bytes(layer)), "goal": "no boto3/botocore", "met": not forbidden,
                "bytes": folder_bytes(layer), "zipped_bytes": zipped_bytes(layer), "packages": found,
                "package_bytes": {p.name: folder_bytes(p) if p.is_dir() else p.stat().st_size
                                  for p in sorted((layer / "python").iterdir())}})
    return rows
