"""The command line: invoke (with an ephemeral moto), token without a stack, clear errors without tracebacks."""

import json
import os
import subprocess
import sys
from pathlib import Path
from textwrap import dedent

import pytest

ROOT = Path(__file__).resolve().parents[2]

TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  Greeting:
    Type: String
    Default: hello
Globals:
  Function:
    Runtime: python3.13
    Timeout: 10
    Environment:
      Variables:
        TABLE_NAME: !Ref Table
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
  Pool:
    Type: AWS::Cognito::UserPool
    Properties:
      UsernameAttributes: [email]
  PoolClient:
    Type: AWS::Cognito::UserPoolClient
    Properties:
      UserPoolId: !Ref Pool
      ExplicitAuthFlows: [ALLOW_USER_PASSWORD_AUTH, ALLOW_REFRESH_TOKEN_AUTH]
  StoreFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn
      Handler: app.handler
      Environment:
        Variables:
          GREETING: !Ref Greeting
      # A SAM policy template: the local stack expands it as the SAM transform does.
      Policies:
        - DynamoDBCrudPolicy: {TableName: !Ref Table}
"""

HANDLER = """
import os
import boto3

table = boto3.resource("dynamodb").Table(os.environ["TABLE_NAME"])


def handler(event, context):
    print("storing", event)
    table.put_item(Item={"pk": event["id"], "greeting": os.environ["GREETING"]})
    return table.get_item(Key={"pk": event["id"]})["Item"]
"""


@pytest.fixture
def project(tmp_path):
    (tmp_path / "template.yaml").write_text(dedent(TEMPLATE))
    (tmp_path / "fn").mkdir()
    (tmp_path / "fn" / "app.py").write_text(dedent(HANDLER))
    (tmp_path / "event.json").write_text('{"id": "item-1"}')
    return tmp_path


def cli(*args, cwd: Path = ROOT, env: dict | None = None, timeout: float = 90) -> subprocess.CompletedProcess:
    # PYTHONPATH: the package is importable from any working directory.
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "local_stack", *args], cwd=cwd, capture_output=True, text=True,
                          check=False, timeout=timeout, env=env)


def test_invoke_runs_the_function_against_an_ephemeral_moto(project):
    result = cli("invoke", "StoreFunction", "-e", str(project / "event.json"), "--template",
                 str(project / "template.yaml"), "--state-dir", str(project / ".local"),
                 "--parameter-overrides", "Greeting=bonjour")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"pk": "item-1", "greeting": "bonjour"}
    assert "storing {'id': 'item-1'}" in result.stderr  # handler output goes to stderr


def test_invoke_holds_the_function_to_its_role(project):
    template = project / "template.yaml"
    template.write_text(template.read_text().replace("DynamoDBCrudPolicy", "DynamoDBReadPolicy"))
    result = cli("invoke", "StoreFunction", "-e", str(project / "event.json"), "--template", str(template),
                 "--state-dir", str(project / ".local"))
    assert result.returncode == 1
    assert json.loads(result.stdout)["errorType"] == "ClientError"
    assert "not authorized to perform: dynamodb:PutItem" in result.stderr


def test_invoke_reports_function_errors_on_stdout_with_exit_1(project):
    (project / "bad.json").write_text("{}")  # no "id": KeyError in the handler
    result = cli("invoke", "StoreFunction", "-e", str(project / "bad.json"), "--template",
                 str(project / "template.yaml"), "--state-dir", str(project / ".local"))
    assert result.returncode == 1
    assert json.loads(result.stdout)["errorType"] == "KeyError"


def test_invoke_unknown_function_lists_the_valid_ones():
    result = cli("invoke", "NoSuchFunction", "--state-dir", "/nonexistent-state")
    assert result.returncode == 2
    assert "no function 'NoSuchFunction'" in result.stderr and "GetSessionFunction" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args, message", [
    (["invoke", "StoreFunction", "-e", "missing.json"], "cannot read event"),
    (["dev", "--parameter-overrides", "Nope=1"], "unknown parameter"),
    (["dev", "--template", "missing.yaml"], "cannot read template"),
    (["dev", "--ws-post-latency-ms", "-1"], "must not be negative"),
])
def test_bad_input_is_a_message_not_a_traceback(project, args, message):
    result = cli(*args, "--state-dir", str(project / ".local"), cwd=project)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr


def test_bad_port_from_the_environment(project):
    result = cli("dev", cwd=project, env={"LOCAL_HTTP_PORT": "abc"})
    assert result.returncode == 2 and "not a port number" in result.stderr


def test_token_without_a_running_stack(tmp_path):
    result = cli("token", "alice", "--state-dir", str(tmp_path))
    assert result.returncode == 1
    assert "no local stack is running" in result.stderr
