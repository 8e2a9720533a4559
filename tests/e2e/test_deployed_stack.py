"""`make test-deployed` and `make bench ARGS="--stack NAME"` through the code that reads a deployed stack,
pointed at the local stack: it registers a CloudFormation stack with its outputs in its embedded endpoint,
and AWS_ENDPOINT_URL sends boto3 there (deployed/__init__.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

import deployed
from local_stack.template import Template

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.local_only("points the deployed-stack tools at the local stack")


@pytest.fixture
def as_deployed(stack, monkeypatch) -> dict[str, str]:
    """boto3 in this process (and the environment for a child) aimed at the local stack's endpoint."""
    environment = deployed.local_environment(stack.info)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    return {**os.environ, **environment}


def pool_usernames(stack) -> set[str]:
    """Who can sign in: the pool signs in by e-mail (its Username is a generated ID)."""
    users = stack.aws("cognito-idp").list_users(UserPoolId=stack["userPoolId"])["Users"]
    return {attribute["Value"] for user in users for attribute in user["Attributes"] if attribute["Name"] == "email"}


def test_the_local_stack_publishes_the_templates_outputs_with_its_own_values(stack, as_deployed):
    outputs = deployed.read_outputs(stack["stackName"])
    assert set(outputs) == set(Template.load(ROOT / "template.yaml").outputs())
    assert outputs["HttpApiUrl"] == stack.url
    assert outputs["WebSocketUrl"] == stack["webSocketUrl"]
    assert (outputs["UserPoolId"], outputs["UserPoolClientId"]) == (stack["userPoolId"], stack["userPoolClientId"])
    assert (outputs["SessionsTableName"], outputs["AudioStreamName"]) == (stack["tableName"], stack["audioStreamName"])
    assert outputs["Region"] == stack["region"]


def test_a_stack_that_does_not_exist_is_a_clear_error(stack, as_deployed):
    with pytest.raises(deployed.DeployedStackError, match="cannot read stack no-such-stack: .*does not exist"):
        deployed.read_outputs("no-such-stack")


def test_test_users_sign_in_during_the_run_and_are_deleted_after_it(stack, as_deployed):
    before = pool_usernames(stack)
    with deployed.deployed_stack(stack["stackName"]) as info:
        assert info["httpApiUrl"] == stack.url
        names = {user["username"] for user in info["users"]}
        assert [user["name"] for user in info["users"]] == ["alice", "bob"]
        assert names.isdisjoint(before) and names <= pool_usernames(stack)
        assert deployed.sign_in(info, info["users"][0])["IdToken"].count(".") == 2
    assert pool_usernames(stack) == before


@pytest.mark.timeout(900)
def test_make_test_deployed_runs_the_end_to_end_suite_through_the_outputs(stack, as_deployed):
    before = pool_usernames(stack)
    # The HTTP API file, and the status broadcasts over the explicit stream mapping.
    selection = "test_http_api or status_changes or listener_count"
    result = subprocess.run(
        ["make", "--no-print-directory", "test-deployed", f"STACK={stack['stackName']}", f"REGION={stack['region']}",
         f"PYTEST_ARGS=-q -p no:cacheprovider -rs -k '{selection}'"],
        cwd=ROOT, env=as_deployed, capture_output=True, text=True, timeout=840, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    passed = re.search(r"(\d+) passed", output)
    assert passed and int(passed.group(1)) >= 14, output[-2000:]
    # A local-only test is skipped, with its reason.
    assert "local stack only: reads the function's log file" in output, output[-2000:]
    assert pool_usernames(stack) == before, "the run's test users were not deleted"


@pytest.mark.timeout(600)
def test_make_bench_with_stack_reports_against_the_req_11_budgets(stack, as_deployed, tmp_path):
    result = subprocess.run(
        ["make", "--no-print-directory", "bench",
         f"ARGS=--stack {stack['stackName']} --region {stack['region']} --short --results {tmp_path}"],
        cwd=ROOT, env=as_deployed, capture_output=True, text=True, timeout=540, check=False)
    report = json.loads((tmp_path / "latest.json").read_text())
    rows = report["rows"]
    # A missed budget is a finding of the run (this machine is busy), not a broken tool: the exit status says it.
    assert (result.returncode == 0) == all(r.get("met") is not False for r in rows), result.stderr[-3000:]
    budgets = [(r["measure"].split(" (")[0], r["goal"]) for r in rows if r.get("goal")]
    assert budgets == [("HTTP POST /sessions", "p95 <= 2000 ms"), ("HTTP GET /sessions/{id}", "p95 <= 500 ms"),
                       ("HTTP PATCH /sessions/{id}", "p95 <= 1000 ms"),
                       ("WS connect, speaker with token", "p95 <= 1000 ms"),
                       ("audio sendAudio -> Kinesis arrival, 1 speaker at 10/s", "p95 <= 100 ms")]
    counts = [r["n"] for r in rows if r.get("goal")]
    assert counts == [2 * 3, 2 * 3, 2 * 3, 5, 10], rows  # --short; every audio chunk arrived
    assert report["meta"]["stack"] == stack["stackName"]
    assert "Deployed stack" in (tmp_path / "latest.md").read_text()


def add_user(env: dict, email: str, password: str, stack: str = "local") -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "-m", "deployed", "add-user", "--stack", stack, email],
        cwd=ROOT, env={**env, "BROADCAST_PASSWORD": password}, capture_output=True, text=True, timeout=60,
        check=False)


def test_add_user_creates_a_user_who_signs_in_with_the_chosen_password(stack, as_deployed):
    email = "carol-first-user@example.com"
    result = add_user(as_deployed, email, "Carol-Chosen-Pass-1", stack["stackName"])
    try:
        assert result.returncode == 0, result.stderr
        assert f"{email} can sign in to stack {stack['stackName']}" in result.stdout
        info = deployed.stack_info(stack["stackName"], deployed.read_outputs(stack["stackName"]), [])
        tokens = deployed.sign_in(info, {"username": email, "password": "Carol-Chosen-Pass-1"})
        assert tokens["IdToken"].count(".") == 2
    finally:
        stack.aws("cognito-idp").admin_delete_user(UserPoolId=stack["userPoolId"], Username=email)


def test_add_user_with_a_weak_password_says_why_and_leaves_no_user(stack, as_deployed):
    before = pool_usernames(stack)
    result = add_user(as_deployed, "dave-weak@example.com", "short", stack["stackName"])
    assert result.returncode == 1
    assert result.stderr.startswith("add-user: ") and "password" in result.stderr.lower()
    assert "Traceback" not in result.stderr
    assert pool_usernames(stack) == before


def test_add_user_to_a_stack_that_does_not_exist_says_so(stack, as_deployed):
    result = add_user(as_deployed, "erin@example.com", "Erin-Chosen-Pass-1", "no-such-stack")
    assert result.returncode == 1
    assert "add-user: cannot read stack no-such-stack" in result.stderr
