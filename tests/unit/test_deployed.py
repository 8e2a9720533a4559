"""deployed/: reading a stack's outputs and making test users, against moto's CloudFormation and Cognito."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

import deployed

# moto's CloudFormation creates nothing for the placeholder resource, as intended, and says so.
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS..CloudFormation..WaitConditionHandle")

REGION = "eu-west-1"
OUTPUTS = {"HttpApiUrl": "https://abc.execute-api.eu-west-1.amazonaws.com/dev",
           "WebSocketUrl": "wss://def.execute-api.eu-west-1.amazonaws.com/dev", "UserPoolId": "pool",
           "UserPoolClientId": "client", "Region": REGION, "AudioStreamName": "audio", "SessionsTableName": "table"}


@pytest.fixture
def aws(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield


def register(name: str, outputs: dict[str, str]) -> None:
    boto3.client("cloudformation", region_name=REGION).create_stack(StackName=name, TemplateBody=json.dumps({
        "Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()}}))


def test_the_outputs_become_the_keys_the_tests_and_benchmarks_read(aws):
    register("svc", OUTPUTS)
    info = deployed.stack_info("svc", deployed.read_outputs("svc", REGION), users=[])
    assert info["httpApiUrl"] == OUTPUTS["HttpApiUrl"] and info["stage"] == "dev"
    assert (info["tableName"], info["audioStreamName"], info["userPoolClientId"]) == ("table", "audio", "client")


def test_a_stack_of_another_service_is_named_as_such(aws):
    register("other", {"HttpApiUrl": OUTPUTS["HttpApiUrl"], "BucketName": "b"})
    with pytest.raises(deployed.DeployedStackError, match="stack other has no output WebSocketUrl, UserPoolId"):
        deployed.read_outputs("other", REGION)


def test_no_credentials_says_how_to_give_them(monkeypatch, tmp_path):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(deployed.DeployedStackError, match="no AWS credentials to read stack svc"):
        deployed.read_outputs("svc", REGION)


def test_temporary_users_exist_only_inside_the_block(aws):
    idp = boto3.client("cognito-idp", region_name=REGION)
    pool = idp.create_user_pool(PoolName="p", UsernameAttributes=["email"])["UserPool"]["Id"]

    def emails() -> set[str]:
        return {a["Value"] for u in idp.list_users(UserPoolId=pool)["Users"] for a in u["Attributes"]
                if a["Name"] == "email"}

    with pytest.raises(RuntimeError, match="the tests failed"), deployed.temporary_users(pool, REGION) as users:
        assert [u["name"] for u in users] == ["alice", "bob"]
        assert emails() == {u["email"] for u in users}
        assert all(u["username"] == u["email"] for u in users)  # the pool signs in by e-mail
        raise RuntimeError("the tests failed")
    assert emails() == set()


def test_a_weak_password_leaves_no_half_made_user(aws):
    idp = boto3.client("cognito-idp", region_name=REGION)
    pool = idp.create_user_pool(PoolName="p", UsernameAttributes=["email"], Policies={"PasswordPolicy": {
        "MinimumLength": 12, "RequireNumbers": True}})["UserPool"]["Id"]
    with pytest.raises(ClientError, match="InvalidPasswordException"):
        deployed.add_user(pool, REGION, "weak@example.com", "short")
    assert idp.list_users(UserPoolId=pool)["Users"] == []
