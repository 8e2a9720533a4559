"""The project under the SAM CLI: its template parsing, and env.local.json for `sam local invoke`."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

# The SAM CLI's own route discovery (what `sam local start-api` serves), run in its virtualenv, with
# Fn::ForEach written out as samconfig.toml has the sam commands do (language_extensions).
ROUTES_SCRIPT = """
import json
from samcli.lib.providers.api_provider import ApiProvider
from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider
stacks, _ = SamLocalStackProvider.get_stacks("template.yaml", language_extensions_enabled=True)
routes = ApiProvider(stacks).routes
print(json.dumps(sorted({(m, r.path, r.function_name) for r in routes for m in r.methods if m != "OPTIONS"})))
"""


@pytest.mark.slow
def test_sam_cli_finds_exactly_the_http_routes_beside_the_websocket_api(repo_root, http_events):
    python = repo_root / ".tools" / "bin" / "python"
    result = subprocess.run([str(python), "-c", ROUTES_SCRIPT], cwd=repo_root, capture_output=True, text=True,
                            timeout=300, env={**os.environ, "SAM_CLI_TELEMETRY": "0"}, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    found = {tuple(route) for route in json.loads(result.stdout.strip().splitlines()[-1])}
    expected = {(e["Method"].upper(), e["Path"], name) for name, e in http_events}
    assert found == expected


def declared_variables(functions) -> dict[str, set[str]]:
    return {name: set((props.get("Environment") or {}).get("Variables", {})) for name, props in functions.items()}


def test_env_local_json_only_sets_variables_the_template_declares(functions, repo_root):
    # The SAM CLI silently ignores a variable the function does not declare.
    env = json.loads((repo_root / "env.local.json").read_text())
    declared = set().union(*declared_variables(functions).values())
    assert set(env["Parameters"]) <= declared, set(env["Parameters"]) - declared
    for name, values in env.items():
        if name != "Parameters":
            assert name in functions and set(values) <= declared_variables(functions)[name]


def test_env_local_json_points_at_the_local_stack_from_a_container(repo_root):
    params = json.loads((repo_root / "env.local.json").read_text())["Parameters"]
    assert params["AWS_ENDPOINT_URL"] == "http://host.docker.internal:4566"
    assert params["JWKS_URL"].startswith("http://host.docker.internal:4566/")
    assert params["JWT_ISSUER"].endswith(params["JWKS_URL"].split("/")[3])
