"""Where the service is: the local stack's .local/stack.json, or a deployed
stack's CloudFormation outputs. A ClientConfig builds ready clients."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .auth import CognitoTokenProvider, TokenProvider
from .errors import ConfigurationError, NetworkUnavailable
from .http_service import SessionHttpService
from .models import Role
from .ws_client import WebSocketClient

DEFAULT_STACK_FILE = Path(".local") / "stack.json"


@dataclass(frozen=True)
class LocalUser:
    name: str
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class ClientConfig:
    http_api_url: str
    websocket_url: str | None
    region: str
    user_pool_client_id: str
    user_pool_id: str | None = None
    cognito_endpoint_url: str | None = None  # the local stack's moto endpoint; None on AWS
    users: tuple[LocalUser, ...] = ()  # ready-made users of the local stack
    cli_args: tuple[str, ...] = ()  # the CLI options that select this configuration

    def token_provider(self, username: str | None = None, password: str | None = None) -> CognitoTokenProvider:
        """A Cognito provider; on the local stack, a user's password (or the first user) is filled in."""
        if username is None and self.users:
            username = self.users[0].username
        if password is None:
            user = next((u for u in self.users if username in (u.name, u.username)), None)
            if user is not None:
                username, password = user.username, user.password
        if not username or not password:
            raise ConfigurationError("Sign-in needs a username and password (--username/--password, or "
                                     "BROADCAST_USERNAME/BROADCAST_PASSWORD).")
        return CognitoTokenProvider(self.user_pool_client_id, username, password, region=self.region,
                                    endpoint_url=self.cognito_endpoint_url)

    def http_service(self, token_provider: TokenProvider, **options: Any) -> SessionHttpService:
        return SessionHttpService(self.http_api_url, token_provider=token_provider, **options)

    def websocket_client(self, session_id: str, *, role: Role = "listener",
                         token_provider: TokenProvider | None = None, **options: Any) -> WebSocketClient:
        return WebSocketClient(self.require_websocket_url(), session_id, role=role,
                               token_provider=token_provider, **options)

    def require_websocket_url(self) -> str:
        if not self.websocket_url:
            raise ConfigurationError("This stack has no WebSocket URL (webSocketUrl in stack.json, or the "
                                     "WebSocketUrl stack output); update or redeploy the stack.")
        return self.websocket_url


def load_local_config(path: str | os.PathLike[str] | None = None) -> ClientConfig:
    """The running local stack, from its stack.json (default .local/stack.json)."""
    file = Path(path) if path else DEFAULT_STACK_FILE
    try:
        info = json.loads(file.read_text())
    except FileNotFoundError:
        raise ConfigurationError(f"No local stack: {file} does not exist. Start it with `make dev`, "
                                 f"or use --stack NAME --region REGION for a deployed one.") from None
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"Cannot read {file}: {exc}") from None
    if not isinstance(info, dict):
        raise ConfigurationError(f"{file} is not a local stack description.")
    pid = info.get("pid")
    if isinstance(pid, int):
        try:
            os.kill(pid, 0)  # signal 0 sends nothing: it asks whether the stack's process is still there
        except ProcessLookupError:
            raise ConfigurationError(f"The local stack described by {file} is not running (pid {pid} is gone). "
                                     f"Start it with `make dev`.") from None
        except PermissionError:
            pass  # it is there, run by another user
    missing = [key for key in ("httpApiUrl", "region", "userPoolClientId", "awsEndpointUrl") if not info.get(key)]
    if missing:
        raise ConfigurationError(f"{file} lacks {', '.join(missing)}; restart the local stack.")
    users = tuple(LocalUser(str(u.get("name") or u["username"]), str(u["username"]), str(u["password"]))
                  for u in info.get("users") or [] if isinstance(u, dict) and u.get("username") and u.get("password"))
    return ClientConfig(
        http_api_url=info["httpApiUrl"], websocket_url=info.get("webSocketUrl") or None, region=info["region"],
        user_pool_client_id=info["userPoolClientId"], user_pool_id=info.get("userPoolId"),
        cognito_endpoint_url=info["awsEndpointUrl"], users=users, cli_args=("--local", str(file)),
    )


def load_stack_config(stack_name: str, region: str, *, client: Any | None = None) -> ClientConfig:
    """A deployed stack, from its CloudFormation outputs (needs AWS credentials
    allowed cloudformation:DescribeStacks)."""
    from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, NoCredentialsError

    if client is None:
        import boto3

        client = boto3.client("cloudformation", region_name=region)
    try:
        stacks = client.describe_stacks(StackName=stack_name)["Stacks"]
    except NoCredentialsError:
        raise ConfigurationError(f"No AWS credentials to read the outputs of stack {stack_name}: configure "
                                 f"them (e.g. AWS_PROFILE), or use --local.") from None
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", str(exc))
        if "does not exist" in message:
            raise ConfigurationError(f"Stack {stack_name} does not exist in {region}.") from None
        raise ConfigurationError(f"Cannot read stack {stack_name} in {region}: {message}") from None
    except ConnectionError as exc:
        raise NetworkUnavailable(f"Cannot reach CloudFormation in {region}: {exc}") from None
    except BotoCoreError as exc:
        raise ConfigurationError(f"Cannot read stack {stack_name} in {region}: {exc}") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in (stacks[0].get("Outputs") or [])} if stacks else {}
    missing = [key for key in ("HttpApiUrl", "UserPoolClientId") if not outputs.get(key)]
    if missing:
        raise ConfigurationError(f"Stack {stack_name} has no output {', '.join(missing)}; is it this service's stack?")
    return ClientConfig(
        http_api_url=outputs["HttpApiUrl"], websocket_url=outputs.get("WebSocketUrl") or None,
        region=outputs.get("Region") or region, user_pool_client_id=outputs["UserPoolClientId"],
        user_pool_id=outputs.get("UserPoolId"), cli_args=("--stack", stack_name, "--region", region),
    )

