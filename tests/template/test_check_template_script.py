"""scripts/check-template.sh passes: cfn-lint, sam validate --lint and a real sam build.

Takes about a minute (the layer's wheels come from PyPI). Never skipped: a
missing tool is a failure, not a reason to skip.
"""

from __future__ import annotations

import subprocess

import pytest

EM_AARCH64 = 183  # ELF e_machine


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_check_template_script_passes_and_builds_an_arm64_layer(repo_root, tmp_path):
    result = subprocess.run(
        ["bash", str(repo_root / "scripts" / "check-template.sh"), str(tmp_path)],
        cwd=repo_root, capture_output=True, text=True, timeout=540, check=False,
    )
    assert result.returncode == 0, f"{result.stdout[-5000:]}\n{result.stderr[-5000:]}"

    layer = tmp_path / "build" / "SessionCoreLayer" / "python"
    assert (layer / "session_core").is_dir() and (layer / "jwt").is_dir()
    assert (layer / "cryptography").is_dir(), "pyjwt[crypto] extra not installed"
    libraries = sorted(layer.rglob("*.so"))
    assert libraries, "no compiled library in the layer: cryptography missing?"
    for library in libraries:
        with library.open("rb") as f:
            header = f.read(20)
        assert header[:4] == b"\x7fELF", library
        assert int.from_bytes(header[18:20], "little") == EM_AARCH64, f"{library} is not aarch64"
