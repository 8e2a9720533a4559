"""The running local stack: the AWS endpoint, moto and its provisioned resources, the Lambda runtime,
the stream pollers, the HTTP and WebSocket gateways and the console, started by ``LocalStack.start``.

Components start in dependency order and each registers its stop on an AsyncExitStack before it
starts, so shutdown (or a failed start) runs the exact reverse. A new server is one more
``_serve`` call there.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from . import aws, iam
from .aws_proxy import AwsProxy
from .conflicts import TransactionConflicts
from .console import ConsoleServer, console_config
from .http_api import HttpGateway
from .jwt_authorizer import JwtVerifier
from .kinesis import KinesisPoller, kinesis_mappings, refusal
from .lambdas import DEFAULT_MAX_CONCURRENCY, LambdaRuntime
from .moto_server import moto_version_problem
from .stand_in import StandInPipeline
from .streams import StreamPoller, stream_mappings
from .template import DEFAULT_REGION, JwtAuthorizer, Template, TemplateError
from .ws_api import IDLE_TIMEOUT, MAX_LIFETIME, WebSocketGateway, websocket_apis

log = logging.getLogger("local_stack")

STACK_FILE = "stack.json"


class StackError(Exception):
    """The stack can't start; the message tells the user what to do."""


@dataclass
class StackConfig:
    template: Path = Path("template.yaml")
    state_dir: Path = Path(".local")
    http_port: int = 3000
    ws_port: int = 3001
    aws_port: int = 4566
    ws_idle_timeout: float = IDLE_TIMEOUT
    ws_max_lifetime: float = MAX_LIFETIME
    ws_post_latency: float = 0.0  # seconds each @connections call is held (AWS-like: --ws-post-latency-ms)
    region: str = DEFAULT_REGION
    parameter_overrides: dict[str, str] = field(default_factory=dict)
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    # Where AWS says no (local_stack/README.md, "How close to AWS"): each function's IAM role, and DynamoDB
    # transaction conflicts. Both on unless switched off (--no-iam, --no-transaction-conflicts).
    iam: bool = True
    transaction_conflicts: bool = True
    console_port: int = 3002
    # A language the speaker's audio is fed back as, through the translated-audio input (stand_in.py); None: off.
    stand_in_pipeline: str | None = None


# ------------------------------------------------------------------ stack.json


def stack_file(state_dir: Path) -> Path:
    return state_dir / STACK_FILE


def pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_running_stack(state_dir: Path) -> dict | None:
    """stack.json of a live stack, or None (absent, unreadable or left by a dead process)."""
    try:
        info = json.loads(stack_file(state_dir).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and pid_alive(info.get("pid")) else None


def write_atomically(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


# ----------------------------------------------------------------------- stack


class LocalStack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.state_dir = config.state_dir.resolve()
        self._exit = contextlib.AsyncExitStack()
        self.template: Template | None = None
        self.moto: aws.MotoProcess | None = None
        self.provisioned: aws.Provisioned | None = None
        self.runtime: LambdaRuntime | None = None
        self.gateway: HttpGateway | None = None
        self.proxy: AwsProxy | None = None
        self.ws_gateways: list[WebSocketGateway] = []
        self.console: ConsoleServer | None = None
        self.apis = []
        self._verifiers: dict[JwtAuthorizer, JwtVerifier] = {}  # one per authorizer, however many routes use it
        self._stack_file_written = False

    async def start(self) -> None:
        cfg = self.config
        problem = moto_version_problem()
        if problem:
            raise StackError(problem)
        self.template = Template.load(cfg.template, parameter_overrides=cfg.parameter_overrides, region=cfg.region)
        aws.require_user_pool(self.template)
        running = read_running_stack(self.state_dir)
        if running:
            raise StackError(f"a local stack is already running with state dir {self.state_dir} "
                             f"(pid {running['pid']}); stop it or use another --state-dir")
        (self.state_dir / "logs").mkdir(parents=True, exist_ok=True)

        # Each stop is registered before its start, so a Ctrl-C in the middle of starting cleans up too.
        # The proxy is moto's own AWS endpoint (Step Functions tasks): it serves Lambda Invoke from the
        # runtime below and forwards the rest to moto; its port must be known before moto starts.
        self.proxy = AwsProxy("", _LateInvoker(self), {}, region=cfg.region)
        self._exit.push_async_callback(self.proxy.stop)
        await self.proxy.start()
        self.moto = aws.MotoProcess(cfg.aws_port, internal_endpoint_port=self.proxy.port)
        self._exit.push_async_callback(self.moto.stop)
        try:
            await self.moto.start()
        except aws.AwsError as exc:
            raise StackError(f"{exc} (choose another --aws-port)") from None
        self.proxy.moto_endpoint = self.moto.endpoint
        # The SAM transform (half a second, mostly its import) runs while moto is being provisioned.
        self.provisioned, _ = await asyncio.gather(
            asyncio.to_thread(aws.provision, self.template, self.moto.endpoint),
            asyncio.to_thread(lambda: self.template.expanded))

        physical = self.provisioned.physical
        self.apis = self.template.http_apis(physical)
        self.proxy.iam = iam.Iam(iam.function_roles(self.template, physical), enforce=cfg.iam)
        if cfg.transaction_conflicts:
            self.proxy.conflicts = TransactionConflicts(self._key_schemas())
        # WebSocket APIs listen before the functions start: their environment names the
        # Management API endpoint, which is this gateway's own.
        for index, spec in enumerate(websocket_apis(self.template)):
            gateway = WebSocketGateway(spec, _LateInvoker(self), port=cfg.ws_port + index if cfg.ws_port else 0,
                                       region=cfg.region, idle_timeout=cfg.ws_idle_timeout,
                                       max_lifetime=cfg.ws_max_lifetime, iam=self.proxy.iam,
                                       post_latency=cfg.ws_post_latency)
            await self._serve(gateway, "the WebSocket API", cfg.ws_port, "--ws-port")
            self.ws_gateways.append(gateway)
        functions = self._with_local_endpoints(self.template.functions(physical))
        for spec in functions.values():
            if not spec.code_dir.is_dir():
                log.warning("%s: CodeUri %s does not exist; its invocations will fail", spec.logical_id, spec.code_dir)

        # Functions reach AWS through the proxy, which applies their roles and DynamoDB's conflicts.
        self.runtime = LambdaRuntime(functions, aws_endpoint=self.proxy.endpoint, region=cfg.region,
                                     log_dir=self.state_dir / "logs", max_concurrency=cfg.max_concurrency)
        self._exit.push_async_callback(self.runtime.close)
        self.proxy.functions = {spec.function_name: lid for lid, spec in functions.items()}
        streams = aws.client("dynamodbstreams", self.moto.endpoint, cfg.region)
        stream_pollers = []
        for mapping in stream_mappings(self.template):
            stream_arn = physical[mapping.table].attrs.get("StreamArn")
            if not stream_arn:
                raise StackError(f"{mapping.function} reads the stream of {mapping.table}, which has none")
            poller = StreamPoller(mapping, stream_arn, streams, self.runtime)
            self._exit.push_async_callback(poller.stop)
            await poller.start()
            stream_pollers.append(poller)
        kinesis_readers = await self._start_kinesis_pollers(physical)
        self.moto.on_records = _waker(stream_pollers, kinesis_readers)
        try:
            self.gateway = HttpGateway(self.apis, self.runtime, self._verifier_for, port=cfg.http_port)
        except ValueError as exc:
            raise StackError(str(exc)) from None
        await self._serve(self.gateway, "the HTTP API", cfg.http_port, "--http-port")
        self.console = ConsoleServer(lambda: console_config(self.describe(), self.template.parameters),
                                     port=cfg.console_port)
        await self._serve(self.console, "the console", cfg.console_port, "--console-port")
        await asyncio.gather(self.runtime.warm(), asyncio.to_thread(self._check_sign_in))
        # Published where a deployed stack's are: tests and benchmarks find both through describe_stacks.
        try:
            await asyncio.to_thread(aws.register_stack, self.moto.endpoint, cfg.region, self.template.stack_name,
                                    self.outputs())
        except aws.AwsError as exc:
            raise StackError(str(exc)) from None

        write_atomically(stack_file(self.state_dir), self.describe())
        self._stack_file_written = True

    async def _start_kinesis_pollers(self, physical: dict) -> list:
        """The Kinesis event source mappings, each checked against its function's role first (as Lambda does
        when the mapping is created); returns them and the stand-in pipeline's reader, if any."""
        kinesis_client = aws.client("kinesis", self.moto.endpoint, self.config.region)
        pollers = []
        for mapping in kinesis_mappings(self.template):
            stream_arn = physical[mapping.stream].attrs["Arn"]
            consumer_arn = physical[mapping.consumer].attrs["ConsumerARN"] if mapping.consumer else None
            role = self.proxy.iam.roles.get(mapping.function) if self.proxy.iam else None
            denial = refusal(role, stream_arn, consumer_arn) if role is not None and self.config.iam else None
            if denial:
                raise StackError(f"{mapping.name}: {denial}")
            poller = KinesisPoller(mapping, stream_arn, kinesis_client, self.runtime, self.config.region)
            self._exit.push_async_callback(poller.stop)
            await poller.start()
            pollers.append(poller)
        self.kinesis_pollers = pollers
        readers = list(pollers)
        if self.config.stand_in_pipeline:
            try:
                stand_in = StandInPipeline(self.config.stand_in_pipeline, self.outputs(), kinesis_client,
                                           self.config.region)
            except ValueError as exc:
                raise StackError(str(exc)) from None
            self._exit.push_async_callback(stand_in.stop)
            await stand_in.start()
            readers.append(stand_in)
        return readers

    async def stop(self) -> None:
        if self._stack_file_written:
            with contextlib.suppress(OSError):
                stack_file(self.state_dir).unlink()
            self._stack_file_written = False
        await self._exit.aclose()

    async def _serve(self, server: Any, what: str, port: int, option: str) -> None:
        """Starts one of the stack's servers; its stop is registered first, so a failed start cleans up too."""
        self._exit.push_async_callback(server.stop)
        try:
            await server.start()
        except OSError as exc:
            raise StackError(f"cannot serve {what} on 127.0.0.1:{port}: {exc.strerror} "
                             f"(choose another {option})") from None

    def _local_jwks(self, issuer: str) -> str | None:
        """Where moto serves the keys of a local user pool's issuer (None: the issuer is no local pool)."""
        pool_ids = [p.ref for lid, p in self.provisioned.physical.items()
                    if self.template.resources[lid]["Type"] == "AWS::Cognito::UserPool"]
        return aws.local_jwks_url(issuer, self.moto.endpoint, self.config.region, pool_ids)

    def _verifier_for(self, authorizer: JwtAuthorizer) -> JwtVerifier:
        if authorizer not in self._verifiers:
            jwks = self._local_jwks(authorizer.issuer)
            if jwks is None:
                log.warning("authorizer %s: issuer %s is not a local user pool; its tokens can't be checked "
                            "offline, so its routes will answer 401", authorizer.name, authorizer.issuer)
            self._verifiers[authorizer] = JwtVerifier(authorizer.issuer, authorizer.audiences, jwks)
        return self._verifiers[authorizer]

    def _local_urls(self) -> dict[str, str]:
        """execute-api URLs as the template builds them -> the local gateways serving them."""
        region, urls = self.config.region, {}
        for gateway in self.ws_gateways:
            api_id, stage = gateway.api.api_id, gateway.api.stage
            urls[f"https://{api_id}.execute-api.{region}.amazonaws.com/{stage}"] = gateway.management_url
            urls[f"wss://{api_id}.execute-api.{region}.amazonaws.com/{stage}"] = gateway.url
        if self.gateway:
            for api in self.apis:
                urls[f"https://{api.api_id}.execute-api.{region}.amazonaws.com/{api.stage}"] = self.gateway.url(api)
        return urls

    def outputs(self) -> dict[str, str]:
        """The template's Outputs with the local values; URLs point at the local gateways."""
        urls = self._local_urls()
        return {name: urls.get(value, value)
                for name, value in self.template.outputs(self.provisioned.physical).items()}

    def _with_local_endpoints(self, functions: dict) -> dict:
        """Where AWS hosts differ locally: environment values naming a WebSocket API's execute-api URL
        point at the local gateway, and a function that verifies tokens of a local pool (JWT_ISSUER)
        gets JWKS_URL, because moto serves the pool's keys at its own endpoint, not at the issuer."""
        replacements = self._local_urls()
        local = {}
        for lid, spec in functions.items():
            env = {key: replacements.get(value, value) for key, value in spec.environment.items()}
            jwks = self._local_jwks(env.get("JWT_ISSUER", ""))
            if jwks and not env.get("JWKS_URL"):  # the template declares it empty for `sam local`
                env["JWKS_URL"] = jwks
            local[lid] = dataclasses.replace(spec, environment=env)
        return local

    def _key_schemas(self) -> dict[str, tuple[str, ...]]:
        """table name -> its key attribute names (hash first), from the template."""
        schemas = {}
        for logical_id, name in self.provisioned.tables.items():
            key_schema = self.template.resources[logical_id]["Properties"].get("KeySchema") or []
            ordered = sorted(key_schema, key=lambda k: k.get("KeyType") != "HASH")
            schemas[name] = tuple(str(k["AttributeName"]) for k in ordered)
        return schemas

    def _check_sign_in(self) -> None:
        """Signs alice in and verifies her token: proves the users work and warms each JWKS cache."""
        users, p = self.provisioned.users, self.provisioned
        if not users:
            return
        try:
            tokens = aws.initiate_auth(self.moto.endpoint, self.config.region, p.user_pool_client_id,
                                       users[0].username, users[0].password)
        except (aws.AwsError, ClientError, BotoCoreError) as exc:
            raise StackError(f"{users[0].username} cannot sign in to the local user pool: {exc}") from None
        for verifier in self._verifiers.values():
            try:
                verifier.verify(tokens["IdToken"])
            except Exception as exc:  # noqa: BLE001 - reported, the stack still serves
                log.warning("the HTTP API authorizer (issuer %s) rejects tokens of the local pool: %s",
                            verifier.issuer, exc)

    # ------------------------------------------------------------ describing

    def describe(self) -> dict:
        p, region, endpoint = self.provisioned, self.config.region, self.moto.endpoint
        main_api = self.apis[0] if self.apis else None
        first_table = next(iter(p.tables.values()), None)
        return {
            "pid": os.getpid(),
            "template": str(self.template.path),
            "stackName": self.template.stack_name,  # its outputs: describe_stacks on awsEndpointUrl
            "parameterOverrides": self.config.parameter_overrides,
            "httpApiUrl": self.gateway.url(main_api) if main_api else None,
            "httpApis": {api.logical_id: self.gateway.url(api) for api in self.apis},
            "stage": main_api.stage if main_api else None,
            "awsEndpointUrl": endpoint,
            # What the functions call: the same AWS, with their IAM roles and DynamoDB's conflicts applied.
            "functionsEndpointUrl": self.proxy.endpoint,
            "strict": {"iam": self.config.iam, "transactionConflicts": self.config.transaction_conflicts},
            "region": region,
            "userPoolId": p.user_pool_id,
            "userPoolClientId": p.user_pool_client_id,
            "issuer": aws.cognito_issuer(region, p.user_pool_id) if p.user_pool_id else None,
            "jwksUrl": aws.jwks_url(endpoint, p.user_pool_id) if p.user_pool_id else None,
            "tableName": first_table,
            "tables": dict(p.tables),
            "users": [u.to_json() for u in p.users],
            "webSocketUrl": self.ws_gateways[0].url if self.ws_gateways else None,
            "webSocketApis": {g.api.logical_id: g.url for g in self.ws_gateways},
            "managementApiUrl": self.ws_gateways[0].management_url if self.ws_gateways else None,
            "consoleUrl": self.console.url if self.console and self.console.port else None,
            "audioStreamName": next(iter(p.streams.values()), None),
            "streams": dict(p.streams),
            "outputs": self.outputs(),
            "standInPipeline": self.config.stand_in_pipeline,
            "stateMachines": dict(p.state_machines),
            "functions": sorted(self.runtime.pools),
            "logsDir": str(self.state_dir / "logs"),
            "resources": {lid: phys.to_json() for lid, phys in p.physical.items()},
        }

    def banner(self) -> str:
        info = self.describe()
        lines = [f"Local stack ready ({self.template.path.name}, region {info['region']})"]
        for api in self.apis:
            lines.append(f"  HTTP API  {self.gateway.url(api)}   ({api.logical_id})")
            for route in api.routes:
                auth = "" if route.authorizer else "  [no auth]"
                lines.append(f"              {route.method:<7} {route.path:<28} -> {route.function}{auth}")
        for gateway in self.ws_gateways:
            lines.append(f"  WebSocket {gateway.url}   ({gateway.api.logical_id}; routes: "
                         f"{', '.join(gateway.api.routes)})")
        if self.console and self.console.port:
            lines.append(f"  Console   {self.console.url}   (speaker.html, listener.html"
                         f"{'' if self.console.built else '; not built: make console'})")
        lines.append(f"  AWS       {info['awsEndpointUrl']}   (moto; any credentials, region {info['region']})")
        lines.append(f"  Cognito   pool {info['userPoolId']}, client {info['userPoolClientId']}")
        for index, user in enumerate(info["users"]):
            lines.append(f"  {'Users' if index == 0 else '':<9} {user['username']} / {user['password']}")
        if info["users"]:
            lines.append(f"  Token     python -m local_stack token {info['users'][0]['name']} "
                         f"--state-dir {self.config.state_dir}")
        if self.config.stand_in_pipeline:
            lines.append(f"  Pipeline  STAND-IN: the speaker's audio fed back as {self.config.stand_in_pipeline!r}, "
                         "NOT a translation (--stand-in-pipeline)")
        lines.append(f"  State     {stack_file(self.config.state_dir)}, logs in {self.config.state_dir / 'logs'}/")
        lines.append("Ctrl-C to stop.")
        return "\n".join(lines)


class _LateInvoker:
    """Invokes through the stack's runtime, which exists only once the gateways that need it have started."""

    def __init__(self, stack: LocalStack) -> None:
        self._stack = stack

    async def invoke(self, function: str, event: Any, request_id: str | None = None) -> Any:
        if self._stack.runtime is None:
            raise RuntimeError("the local stack is still starting")
        return await self._stack.runtime.invoke(function, event, request_id)


__all__ = ["LocalStack", "StackConfig", "StackError", "TemplateError", "read_running_stack", "stack_file"]


def _waker(stream_pollers: list, kinesis_readers: list) -> Callable[[dict], None]:
    """What wakes the pollers on moto's notice of records appended: only those of the streams it names."""
    by_table: dict[str, list] = {}
    for poller in stream_pollers:
        by_table.setdefault(poller.table_name, []).append(poller)
    by_stream: dict[str, list] = {}
    for reader in kinesis_readers:
        by_stream.setdefault(reader.stream_arn.rsplit("/", 1)[-1], []).append(reader)

    def wake(notice: dict) -> None:
        for table in notice.get("dynamodb") or ():
            for poller in by_table.get(table, ()):
                poller.wake()
        for stream, shards in (notice.get("kinesis") or {}).items():
            for reader in by_stream.get(stream, ()):
                reader.wake(set(shards))

    return wake
