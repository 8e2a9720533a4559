"""A deployed stack as the end-to-end tests (`make test-deployed`) and the benchmarks (`make bench
ARGS="--stack NAME"`) use it: its CloudFormation outputs, read with describe_stacks, and test users of
their own, created in the stack's user pool with the admin APIs and deleted afterwards.

Every AWS call goes through boto3's default configuration (credentials, AWS_REGION, AWS_ENDPOINT_URL).
The local stack registers a stack with the same outputs in its embedded endpoint, so pointing
AWS_ENDPOINT_URL there runs this very code against it (`make test` does).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

# What the tests and benchmarks need from the stack (template.yaml Outputs).
REQUIRED_OUTPUTS = ("HttpApiUrl", "WebSocketUrl", "UserPoolId", "UserPoolClientId", "Region",
                    "AudioStreamName", "SessionsTableName")
TEST_USERS = ("alice", "bob")


class DeployedStackError(Exception):
    """The stack can't be read or used; the message says what to do."""


def aws_client(service: str, region: str | None = None) -> Any:
    return boto3.session.Session().client(service, region_name=region)


def read_outputs(stack_name: str, region: str | None = None) -> dict[str, str]:
    """The stack's outputs, {OutputKey: OutputValue}; every one of REQUIRED_OUTPUTS is there."""
    try:
        stacks = aws_client("cloudformation", region).describe_stacks(StackName=stack_name)["Stacks"]
    except NoCredentialsError:
        raise DeployedStackError(f"no AWS credentials to read stack {stack_name}: configure them "
                                 f"(AWS_PROFILE, or the usual environment variables)") from None
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", str(exc))
        raise DeployedStackError(f"cannot read stack {stack_name}: {message}") from None
    except BotoCoreError as exc:
        raise DeployedStackError(f"cannot read stack {stack_name}: {exc}") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs") or []}
    missing = [key for key in REQUIRED_OUTPUTS if not outputs.get(key)]
    if missing:
        raise DeployedStackError(f"stack {stack_name} has no output {', '.join(missing)}: "
                                 f"is it this service's stack, deployed from this template?")
    return outputs


def add_user(pool_id: str, region: str, email: str, password: str) -> str:
    """A verified user who signs in with `email` and `password` (permanent); returns its username."""
    idp = aws_client("cognito-idp", region)
    pool = idp.describe_user_pool(UserPoolId=pool_id)["UserPool"]
    username = email if "email" in (pool.get("UsernameAttributes") or []) else email.split("@", 1)[0]
    idp.admin_create_user(UserPoolId=pool_id, Username=username, MessageAction="SUPPRESS", UserAttributes=[
        {"Name": "email", "Value": email}, {"Name": "email_verified", "Value": "true"}])
    try:
        idp.admin_set_user_password(UserPoolId=pool_id, Username=username, Password=password, Permanent=True)
    except ClientError:
        idp.admin_delete_user(UserPoolId=pool_id, Username=username)  # no half-made user (a weak password)
        raise
    return username


@contextlib.contextmanager
def temporary_users(pool_id: str, region: str, names: tuple[str, ...] = TEST_USERS) -> Iterator[list[dict]]:
    """Users of this run only (names suffixed with a random tag, verified, permanent random passwords,
    no invitation e-mail), deleted on exit whatever happened."""
    idp = aws_client("cognito-idp", region)
    run = secrets.token_hex(4)  # this run's users, beside any other run's
    created: list[dict] = []
    try:
        try:
            for name in names:
                email = f"{name}-{run}@example.com"
                # Meets the template's password policy: 12+ characters, upper and lower case, a digit.
                password = f"Test-{secrets.token_urlsafe(12)}-Aa1"
                username = add_user(pool_id, region, email, password)
                created.append({"name": name, "username": username, "email": email, "password": password})
        except (ClientError, BotoCoreError) as exc:
            raise DeployedStackError(f"cannot create test users in pool {pool_id}: {exc}") from None
        yield created
    finally:
        for user in created:
            with contextlib.suppress(ClientError, BotoCoreError):
                idp.admin_delete_user(UserPoolId=pool_id, Username=user["username"])


def stack_info(stack_name: str, outputs: dict[str, str], users: list[dict]) -> dict:
    """The outputs under the keys of the local stack's stack.json that tests and benchmarks read."""
    return {
        "stackName": stack_name,
        "httpApiUrl": outputs["HttpApiUrl"],
        "stage": urlparse(outputs["HttpApiUrl"]).path.strip("/"),
        "webSocketUrl": outputs["WebSocketUrl"],
        "region": outputs["Region"],
        "userPoolId": outputs["UserPoolId"],
        "userPoolClientId": outputs["UserPoolClientId"],
        "tableName": outputs["SessionsTableName"],
        "audioStreamName": outputs["AudioStreamName"],
        "dashboardUrl": outputs.get("DashboardUrl"),
        "outputs": dict(outputs),
        "users": users,
        "deployed": True,
    }


@contextlib.contextmanager
def deployed_stack(stack_name: str, region: str | None = None) -> Iterator[dict]:
    """The stack's description with test users of its own, who are deleted on exit."""
    outputs = read_outputs(stack_name, region)
    with temporary_users(outputs["UserPoolId"], outputs["Region"]) as users:
        yield stack_info(stack_name, outputs, users)


def sign_in(info: dict, user: dict) -> dict:
    """Cognito's AuthenticationResult for a user (USER_PASSWORD_AUTH on the stack's app client)."""
    response = aws_client("cognito-idp", info["region"]).initiate_auth(
        ClientId=info["userPoolClientId"], AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": user["username"], "PASSWORD": user["password"]})
    if "AuthenticationResult" not in response:
        raise DeployedStackError(f"sign-in of {user['username']} asks for a challenge ({response.get('ChallengeName')})")
    return response["AuthenticationResult"]


def local_environment(info: dict) -> dict[str, str]:
    """Environment that sends boto3 (and so this module) to a local stack's embedded endpoint."""
    return {"AWS_ENDPOINT_URL": info["awsEndpointUrl"], "AWS_REGION": info["region"],
            "AWS_DEFAULT_REGION": info["region"], "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}


__all__ = ["DeployedStackError", "add_user", "deployed_stack", "local_environment", "read_outputs", "sign_in", "stack_info",
           "temporary_users"]
