"""Embedded AWS: moto in a separate process, provisioned from the template.

Creates every DynamoDB table and the Cognito user pool and app client the
template declares, with their template properties, plus ready-to-use users.
Provisioners are per resource type (``PROVISIONERS``): a new resource type is
one function there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .template import ACCOUNT_ID, Physical, Template, TemplateError

log = logging.getLogger("local_stack")

MOTO_SCRIPT = Path(__file__).with_name("moto_server.py")
HOST = "127.0.0.1"
FAKE_KEY = "local"
STARTUP_TIMEOUT = 60.0


@dataclass(frozen=True)
class LocalUser:
    """A ready Cognito user; ``username`` is what InitiateAuth takes."""

    name: str  # short name: "alice"
    username: str
    email: str
    password: str

    def to_json(self) -> dict:
        return {"name": self.name, "username": self.username, "email": self.email, "password": self.password}


# Passwords meet the template's policy (12+ chars, upper, lower, digit).
DEFAULT_USERS = (("alice", "Alice-Local-Pass-1"), ("bob", "Bob-Local-Pass-1"))


class AwsError(Exception):
    """Moto could not be started or provisioned."""


def client(service: str, endpoint: str, region: str) -> Any:
    return boto3.session.Session().client(
        service, endpoint_url=endpoint, region_name=region,
        aws_access_key_id=FAKE_KEY, aws_secret_access_key=FAKE_KEY,
        config=Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=30),
    )


class MotoProcess:
    """moto_server.py as a child process listening on 127.0.0.1."""

    def __init__(self, port: int = 0, *, internal_endpoint_port: int | None = None) -> None:
        self.requested_port = port
        # Where moto's own clients (Step Functions tasks) send AWS calls: the AwsProxy.
        self.internal_endpoint_port = internal_endpoint_port
        self.port: int | None = None
        self._proc: asyncio.subprocess.Process | None = None
        # Called with each of moto's notices of stream records appended (moto_server.announce_stream_records):
        # {"kinesis": {stream name: [shard ids]}, "dynamodb": [table names]}.
        self.on_records: Callable[[dict], None] | None = None
        self._notices: asyncio.Task | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    async def start(self) -> None:
        # Pool and client IDs derived from their properties, not random: the same template gives the same
        # IDs on every run, so env.local.json (for `sam local invoke`) can name them.
        env = {**os.environ, "MOTO_COGNITO_IDP_USER_POOL_ID_STRATEGY": "HASH",
               "MOTO_COGNITO_IDP_USER_POOL_CLIENT_ID_STRATEGY": "HASH"}
        extra = []
        if self.internal_endpoint_port:
            extra = ["--execute-state-machines"]
            env["MOTO_PORT"] = str(self.internal_endpoint_port)
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-I", str(MOTO_SCRIPT), "--host", HOST, "--port", str(self.requested_port), *extra,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
            start_new_session=True,  # Ctrl-C goes to the stack, which stops moto last
        )
        try:
            line = await asyncio.wait_for(self._proc.stdout.readline(), STARTUP_TIMEOUT)
        except TimeoutError:
            await self.stop()
            raise AwsError(f"moto did not start within {STARTUP_TIMEOUT:.0f} s") from None
        try:
            message = json.loads(line) if line else {"error": "moto exited during startup"}
        except ValueError:
            message = {"error": f"unexpected output from moto: {line[:200]!r}"}
        if "port" not in message:
            await self.stop()
            raise AwsError(f"moto: {message.get('error')}")
        self.port = int(message["port"])
        self._notices = asyncio.get_running_loop().create_task(self._read_notices(self._proc.stdout))

    async def _read_notices(self, stdout: asyncio.StreamReader) -> None:
        """Reads moto's stdout to its end (so moto never blocks on a full pipe), handing each notice on."""
        while line := await stdout.readline():
            try:
                notice = json.loads(line)
            except ValueError:
                log.warning("moto: unexpected output %r", line[:200])
                continue
            if self.on_records is not None and isinstance(notice, dict):
                try:
                    self.on_records(notice)
                except Exception:  # a bad notice must not stop the next ones
                    log.exception("moto's notice %r", notice)

    async def stop(self) -> None:
        notices, self._notices = self._notices, None
        if notices is not None:
            notices.cancel()
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()


# ----------------------------------------------------------------- provisioning


@dataclass
class Provisioned:
    """Physical values of what was created, for the template resolver and stack.json."""

    physical: dict[str, Physical] = field(default_factory=dict)
    tables: dict[str, str] = field(default_factory=dict)  # logical id -> table name
    user_pool_id: str | None = None
    user_pool_client_id: str | None = None
    users: list[LocalUser] = field(default_factory=list)
    streams: dict[str, str] = field(default_factory=dict)  # logical id -> Kinesis stream name
    state_machines: dict[str, str] = field(default_factory=dict)  # logical id -> ARN
    buckets: dict[str, str] = field(default_factory=dict)  # logical id -> S3 bucket name


def api_params(api: Any, operation: str, props: dict, renames: dict[str, str] | None = None) -> dict:
    """CloudFormation properties -> API parameters, using botocore's model.

    Most CloudFormation property names equal the API's; members the API doesn't
    take (CloudFormation-only settings) are dropped, and scalars are coerced to
    the API's types (``!Ref`` of a Number parameter is a string).
    """
    shape = api.meta.service_model.operation_model(operation).input_shape
    renames = renames or {}
    return _coerce(shape, {renames.get(k, k): v for k, v in props.items()})


def _coerce(shape: Any, value: Any) -> Any:
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        return {k: _coerce(shape.members[k], v) for k, v in value.items() if k in shape.members}
    if kind == "list" and isinstance(value, list):
        return [_coerce(shape.member, v) for v in value]
    if kind == "map" and isinstance(value, dict):
        return {str(k): _coerce(shape.value, v) for k, v in value.items()}
    if kind in ("integer", "long") and isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    if kind == "boolean" and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if kind == "string" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


def _table(template: Template, logical_id: str, props: dict, ctx: _Context) -> Physical:
    name = str(props.get("TableName") or f"{template.stack_name}-{logical_id}")
    params = dict(props)
    params["TableName"] = name
    params.setdefault("BillingMode", "PROVISIONED")
    stream = params.pop("StreamSpecification", None)
    if stream:
        params["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
    params.pop("ResourcePolicy", None)  # an object here, a JSON string in the API; irrelevant locally
    sse = params.pop("SSESpecification", None)
    if sse:
        # CloudFormation says SSEEnabled where the API says Enabled.
        params["SSESpecification"] = {k: v for k, v in {
            "Enabled": sse.get("SSEEnabled"), "SSEType": sse.get("SSEType"),
            "KMSMasterKeyId": sse.get("KMSMasterKeyId")}.items() if v is not None}
    ddb = ctx.client("dynamodb")
    description = ddb.create_table(**api_params(ddb, "CreateTable", params))["TableDescription"]
    ttl = props.get("TimeToLiveSpecification")
    if ttl and str(ttl.get("Enabled")).lower() == "true":
        ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={
            "AttributeName": ttl["AttributeName"], "Enabled": True})
    ctx.result.tables[logical_id] = name
    attrs = {"Arn": description["TableArn"]}
    if description.get("LatestStreamArn"):
        attrs["StreamArn"] = description["LatestStreamArn"]
    return Physical(name, attrs)


def _user_pool(template: Template, logical_id: str, props: dict, ctx: _Context) -> Physical:
    props = {"UserPoolName": f"{template.stack_name}-{logical_id}", **props}
    idp = ctx.client("cognito-idp")
    pool = idp.create_user_pool(**api_params(idp, "CreateUserPool", props, {"UserPoolName": "PoolName"}))["UserPool"]
    pool_id, region = pool["Id"], template.region
    ctx.pool_props[pool_id] = props
    if ctx.result.user_pool_id is None:
        ctx.result.user_pool_id = pool_id
    return Physical(pool_id, {
        "Arn": pool["Arn"],
        "ProviderName": f"cognito-idp.{region}.amazonaws.com/{pool_id}",
        "ProviderURL": f"https://cognito-idp.{region}.amazonaws.com/{pool_id}",
        "UserPoolId": pool_id,
    })


def _user_pool_client(template: Template, logical_id: str, props: dict, ctx: _Context) -> Physical:
    props = {"ClientName": f"{template.stack_name}-{logical_id}", **props}
    idp = ctx.client("cognito-idp")
    created = idp.create_user_pool_client(**api_params(idp, "CreateUserPoolClient", props))["UserPoolClient"]
    if created["UserPoolId"] == ctx.result.user_pool_id and ctx.result.user_pool_client_id is None:
        ctx.result.user_pool_client_id = created["ClientId"]
    attrs = {"ClientId": created["ClientId"], "Name": created["ClientName"]}
    if created.get("ClientSecret"):
        attrs["ClientSecret"] = created["ClientSecret"]
    return Physical(created["ClientId"], attrs)


def _stream(template: Template, logical_id: str, props: dict, ctx: _Context) -> Physical:
    name = str(props.get("Name") or f"{template.stack_name}-{logical_id}")
    kinesis = ctx.client("kinesis")
    mode = (props.get("StreamModeDetails") or {}).get("StreamMode", "PROVISIONED")
    if mode == "ON_DEMAND":
        kinesis.create_stream(StreamName=name, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    else:
        kinesis.create_stream(StreamName=name, ShardCount=int(props.get("ShardCount", 1)))
    arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    ctx.result.streams[logical_id] = name
    return Physical(name, {"Arn": arn})


def _stream_consumer(template: Template, logical_id: str, props: dict, ctx: _Context) -> Physical:
    """An enhanced fan-out consumer (the Kinesis pollers read its stream: kinesis.py)."""
    consumer = ctx.client("kinesis").register_stream_consumer(StreamARN=str(props["StreamARN"]),
                                                               ConsumerName=str(props["ConsumerName"]))["Consumer"]
    return Physical(consumer["ConsumerARN"], {"ConsumerARN": consumer["ConsumerARN"],
                                              "ConsumerName": consumer["ConsumerName"],
                                              "StreamARN": str(props["StreamARN"])})


def _bucket(template: Template, logical_id: str, props: dict, ctx: _Context) -> Physical:
    """An S3 bucket with its encryption, lifecycle and CORS rules (the last answers a browser's GET locally as on
    AWS). Its bucket policy is not applied: moto does not enforce one."""
    name = str(props.get("BucketName") or f"{template.stack_name}-{logical_id}").lower()[:63]
    s3 = ctx.client("s3")
    region = template.region
    s3.create_bucket(Bucket=name, **({} if region == "us-east-1" else
                                     {"CreateBucketConfiguration": {"LocationConstraint": region}}))
    encryption = props.get("BucketEncryption")
    if encryption:
        # CloudFormation says ServerSideEncryptionByDefault where the API says ApplyServerSideEncryptionByDefault.
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": [
            {"ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]}
            for rule in encryption["ServerSideEncryptionConfiguration"]]})
    rules = (props.get("CorsConfiguration") or {}).get("CorsRules")
    if rules:
        # CloudFormation says MaxAge where the API says MaxAgeSeconds.
        s3.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": [
            {**{k: v for k, v in rule.items() if k not in ("MaxAge", "Id")},
             **({"MaxAgeSeconds": int(rule["MaxAge"])} if "MaxAge" in rule else {})} for rule in rules]})
    lifecycle = (props.get("LifecycleConfiguration") or {}).get("Rules")
    if lifecycle:
        s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": [
            {"ID": str(rule.get("Id", "rule")), "Status": rule["Status"], "Filter": {"Prefix": ""},
             "Expiration": {"Days": int(rule["ExpirationInDays"])}}
            for rule in lifecycle if "ExpirationInDays" in rule]})
    ctx.result.buckets[logical_id] = name
    return Physical(name, {"Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com",
                           "RegionalDomainName": f"{name}.s3.{region}.amazonaws.com"})


def _state_machine(template: Template, logical_id: str, props: dict, ctx: _Context) -> Physical:
    """AWS::Serverless::StateMachine from its DefinitionUri file and DefinitionSubstitutions."""
    name = str(props.get("Name") or f"{template.stack_name}-{logical_id}")
    if "DefinitionUri" in props:
        definition = (template.path.parent / str(props["DefinitionUri"])).read_text()
    else:
        definition = json.dumps(props["Definition"])
    for key, value in (props.get("DefinitionSubstitutions") or {}).items():
        definition = definition.replace("${" + key + "}", str(value))
    sfn = ctx.client("stepfunctions")
    arn = sfn.create_state_machine(
        name=name, definition=definition, type=str(props.get("Type", "STANDARD")),
        roleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/{name}-role")["stateMachineArn"]
    ctx.result.state_machines[logical_id] = arn
    return Physical(arn, {"Arn": arn, "Name": name})


@dataclass
class _Context:
    endpoint: str
    region: str
    result: Provisioned
    pool_props: dict[str, dict] = field(default_factory=dict)
    _clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = client(service, self.endpoint, self.region)
        return self._clients[service]


Provisioner = Callable[[Template, str, dict, _Context], Physical]

# In dependency order: a client refers to its pool.
PROVISIONERS: dict[str, Provisioner] = {
    "AWS::DynamoDB::Table": _table,
    "AWS::Cognito::UserPool": _user_pool,
    "AWS::Cognito::UserPoolClient": _user_pool_client,
    "AWS::Kinesis::Stream": _stream,
    "AWS::Kinesis::StreamConsumer": _stream_consumer,
    "AWS::Serverless::StateMachine": _state_machine,
    "AWS::S3::Bucket": _bucket,
}


def provision(template: Template, endpoint: str, users: tuple[tuple[str, str], ...] = DEFAULT_USERS) -> Provisioned:
    """Creates the template's resources in moto (synchronous; run it in a thread)."""
    ctx = _Context(endpoint, template.region, Provisioned())
    for rtype, provisioner in PROVISIONERS.items():
        for logical_id, resource in template.resources_of_type(rtype).items():
            props = template.resolve(resource["Properties"], ctx.result.physical, f"Resources.{logical_id}.Properties")
            try:
                ctx.result.physical[logical_id] = provisioner(template, logical_id, props, ctx)
            except (ClientError, BotoCoreError) as exc:
                raise AwsError(f"cannot create {logical_id} ({rtype}) in moto: {exc}") from None
    if ctx.result.user_pool_id and ctx.result.user_pool_client_id:
        pool_props = ctx.pool_props[ctx.result.user_pool_id]
        ctx.result.users = [_create_user(ctx, pool_props, name, password) for name, password in users]
    return ctx.result


def _create_user(ctx: _Context, pool_props: dict, name: str, password: str) -> LocalUser:
    email = f"{name}@example.com"
    # A pool with UsernameAttributes [email] signs users in by email; otherwise by name.
    username = email if "email" in (pool_props.get("UsernameAttributes") or []) else name
    idp = ctx.client("cognito-idp")
    pool_id = ctx.result.user_pool_id
    try:
        idp.admin_create_user(UserPoolId=pool_id, Username=username, MessageAction="SUPPRESS", UserAttributes=[
            {"Name": "email", "Value": email}, {"Name": "email_verified", "Value": "true"}])
        idp.admin_set_user_password(UserPoolId=pool_id, Username=username, Password=password, Permanent=True)
    except (ClientError, BotoCoreError) as exc:
        raise AwsError(f"cannot create user {username}: {exc}") from None
    return LocalUser(name, username, email, password)


def register_stack(endpoint: str, region: str, stack_name: str, outputs: dict[str, str]) -> None:
    """A CloudFormation stack in moto whose outputs are the local stack's, so whatever reads a deployed
    stack's outputs (describe_stacks) reads this one the same way. Its only resource is a placeholder:
    the real ones are provisioned above, from the service's template."""
    template = {
        "Description": "The local stack's outputs (python -m local_stack dev)",
        "Resources": {"LocalStack": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {name: {"Value": value} for name, value in outputs.items()},
    }
    try:
        client("cloudformation", endpoint, region).create_stack(StackName=stack_name, TemplateBody=json.dumps(template))
    except (ClientError, BotoCoreError) as exc:
        raise AwsError(f"cannot register stack {stack_name} in moto: {exc}") from None


def initiate_auth(endpoint: str, region: str, client_id: str, username: str, password: str) -> dict:
    """A real USER_PASSWORD_AUTH sign-in; returns Cognito's AuthenticationResult."""
    idp = client("cognito-idp", endpoint, region)
    response = idp.initiate_auth(ClientId=client_id, AuthFlow="USER_PASSWORD_AUTH",
                                 AuthParameters={"USERNAME": username, "PASSWORD": password})
    if "AuthenticationResult" not in response:
        raise AwsError(f"sign-in of {username} asks for a challenge ({response.get('ChallengeName')})")
    return response["AuthenticationResult"]


def cognito_issuer(region: str, pool_id: str) -> str:
    return f"https://cognito-idp.{region}.amazonaws.com/{pool_id}"


def jwks_url(endpoint: str, pool_id: str) -> str:
    return f"{endpoint}/{pool_id}/.well-known/jwks.json"


def local_jwks_url(issuer: str, endpoint: str, region: str, pool_ids: list[str]) -> str | None:
    """Moto signs with the real-looking Cognito issuer but serves the keys itself."""
    for pool_id in pool_ids:
        if issuer.rstrip("/") == cognito_issuer(region, pool_id):
            return jwks_url(endpoint, pool_id)
    return None


def require_user_pool(template: Template) -> None:
    if not template.resources_of_type("AWS::Cognito::UserPool"):
        raise TemplateError("the template creates no Cognito user pool, so the local stack has nobody to sign in "
                            "(leave ExistingUserPoolId empty when running locally)")
