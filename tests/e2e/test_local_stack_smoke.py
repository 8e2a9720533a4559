"""Smoke test of the running local stack: routing, the JWT authorizer, stack.json and logs."""

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.local_only("checks the local stack itself")


def test_stack_json_describes_the_running_stack(stack):
    assert stack.url.endswith(f"/{stack['stage']}")
    assert stack["tableName"] in stack["tables"].values()
    assert {u["name"] for u in stack["users"]} >= {"alice", "bob"}
    assert stack["jwksUrl"].startswith(stack["awsEndpointUrl"])
    assert stack["issuer"] == f"https://cognito-idp.{stack['region']}.amazonaws.com/{stack['userPoolId']}"
    assert stack["pid"] == stack.process.pid


def test_unknown_route_is_404(stack):
    r = httpx.get(f"{stack.url}/no/such/route", headers=stack.auth())
    assert r.status_code == 404
    assert r.json() == {"message": "Not Found"}
    assert r.headers["apigw-requestid"]


def test_missing_or_bad_token_is_401_with_nothing_more(stack):
    for headers in ({}, {"Authorization": "Bearer not-a-jwt"}, {"Authorization": stack.token("alice") + "x"}):
        r = httpx.post(f"{stack.url}/sessions", headers=headers, json={"sourceLanguage": "en"})
        assert r.status_code == 401
        assert r.content == b'{"message":"Unauthorized"}'


def test_id_and_access_tokens_reach_the_function(stack):
    for access in (False, True):
        r = httpx.get(f"{stack.url}/sessions/no-such-session", headers=stack.auth("bob", access=access))
        assert r.status_code not in (401, 403, 500), r.text
    assert stack.log("GetSessionFunction").count("REPORT RequestId:") >= 2


def test_token_and_invoke_commands_use_the_running_stack(stack):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "local_stack", *args, "--state-dir", str(stack.state_dir)],
                              cwd=ROOT, capture_output=True, text=True, check=False, timeout=60)

    token = cli("token", "alice")
    assert token.returncode == 0, token.stderr
    r = httpx.get(f"{stack.url}/sessions/no-such-session", headers={"Authorization": token.stdout.strip()})
    assert r.status_code not in (401, 403, 500)
    assert cli("token", "mallory").returncode == 2

    invoked = cli("invoke", "GetSessionFunction", "-e", "events/get_session.json")
    assert invoked.returncode == 0, invoked.stderr
    assert "running local stack" in invoked.stderr
    assert isinstance(json.loads(invoked.stdout)["statusCode"], int)
