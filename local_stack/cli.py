"""Runs the service on one machine, without Docker or an AWS account (see each command's --help)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import signal
import sys
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from . import aws
from .aws_proxy import AwsProxy
from .iam import Iam, function_roles
from .lambdas import DEFAULT_MAX_CONCURRENCY, InvocationError, LambdaRuntime
from .stack import LocalStack, StackConfig, StackError, read_running_stack, stack_file
from .template import DEFAULT_REGION, SERVERLESS_FUNCTION, Physical, Template, TemplateError

log = logging.getLogger("local_stack")

# Exit codes: 0 ok; 1 failed (function error, bad template or event, stack can't start);
# 2 bad command line, unknown function or user.
EXPECTED_ERRORS = (TemplateError, StackError, aws.AwsError)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (0 picks a free one)")
    return port


def _language(text: str) -> str:
    if not re.fullmatch(r"[a-z]{2}", text):
        raise argparse.ArgumentTypeError("--stand-in-pipeline takes a two-letter language code, e.g. es")
    return text


def _env_port(name: str, default: int) -> str:
    return os.environ.get(name) or str(default)


def _overrides(items: list[str]) -> dict[str, str]:
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"parameter override {item!r} is not Key=Value")
        overrides[key] = value
    return overrides


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m local_stack", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--state-dir", type=Path, default=Path(".local"),
                         help="where stack.json and logs live (default .local)")
        sub.add_argument("--template", type=Path, default=Path("template.yaml"), help="default template.yaml")

    def template_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--region", default=DEFAULT_REGION, help=f"default {DEFAULT_REGION}")
        sub.add_argument("--parameter-overrides", nargs="*", default=[], metavar="KEY=VALUE",
                         help="template parameters, like sam deploy's")

    dev = commands.add_parser("dev", help="run the whole stack until Ctrl-C")
    common(dev)
    template_options(dev)
    dev.add_argument("--http-port", type=_port, default=_env_port("LOCAL_HTTP_PORT", 3000),
                     help="HTTP API port (env LOCAL_HTTP_PORT, default 3000; 0 = any free port)")
    dev.add_argument("--ws-port", type=_port, default=_env_port("LOCAL_WS_PORT", 3001),
                     help="WebSocket API port (env LOCAL_WS_PORT, default 3001; 0 = any free port)")
    dev.add_argument("--ws-idle-timeout", type=float, default=600.0,
                     help="seconds before an idle socket is closed, as API Gateway does (default 600)")
    dev.add_argument("--ws-max-lifetime", type=float, default=7200.0,
                     help="seconds before any socket is closed, as API Gateway does (default 7200)")
    dev.add_argument("--ws-post-latency-ms", type=float, default=0.0, metavar="MS",
                     help="hold each @connections call this long, as AWS's tens of ms do (local_stack/README.md \"How close to "
                          "AWS\"; e.g. 30; default 0: about 1 ms)")
    dev.add_argument("--aws-port", type=_port, default=_env_port("LOCAL_AWS_PORT", 4566),
                     help="moto (AWS endpoint) port (env LOCAL_AWS_PORT, default 4566; 0 = any free port)")
    dev.add_argument("--console-port", type=_port, default=_env_port("LOCAL_CONSOLE_PORT", 3002),
                     help="console (speaker and listener pages) port (env LOCAL_CONSOLE_PORT, default 3002; "
                          "0 = any free port)")
    dev.add_argument("--max-concurrency", type=int, default=DEFAULT_MAX_CONCURRENCY,
                     help=f"workers per function at most (default {DEFAULT_MAX_CONCURRENCY})")
    dev.add_argument("--stand-in-pipeline", metavar="LANG", type=_language, default=None,
                     help="feed the speaker's audio back as the translated audio of LANG (e.g. es), through the "
                          "translated-audio input: a stand-in for the pipeline, NOT a translation; off by default")
    dev.add_argument("--no-iam", dest="iam", action="store_false",
                     help="let every function call anything (default: each is held to its IAM role, as on AWS)")
    dev.add_argument("--no-transaction-conflicts", dest="transaction_conflicts", action="store_false",
                     help="never cancel a DynamoDB transaction for a conflict (default: as DynamoDB does)")

    token = commands.add_parser("token", help="print a fresh ID (or access) token of a local user")
    token.add_argument("user", help="alice, bob, or a full username")
    token.add_argument("--access", action="store_true", help="print the access token instead of the ID token")
    token.add_argument("--state-dir", type=Path, default=Path(".local"))

    invoke = commands.add_parser("invoke", help="run one function with an event, like sam local invoke")
    invoke.add_argument("function", help="logical id, e.g. GetSessionFunction")
    invoke.add_argument("-e", "--event", help="event JSON file ('-' for stdin; default {})")
    common(invoke)
    template_options(invoke)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="%(asctime)s.%(msecs)03d %(message)s", datefmt="%H:%M:%S")
    log.setLevel(logging.INFO)
    try:
        if args.command == "dev":
            if args.max_concurrency < 1:
                parser.error("--max-concurrency must be at least 1")
            if args.ws_post_latency_ms < 0:
                parser.error("--ws-post-latency-ms must not be negative")
            return asyncio.run(run_dev(StackConfig(
                template=args.template, state_dir=args.state_dir, http_port=args.http_port,
                ws_port=args.ws_port, ws_idle_timeout=args.ws_idle_timeout, ws_max_lifetime=args.ws_max_lifetime,
                ws_post_latency=args.ws_post_latency_ms / 1000, aws_port=args.aws_port, region=args.region,
                parameter_overrides=_overrides(args.parameter_overrides), max_concurrency=args.max_concurrency,
                iam=args.iam, transaction_conflicts=args.transaction_conflicts, console_port=args.console_port,
                stand_in_pipeline=args.stand_in_pipeline)))
        if args.command == "token":
            return run_token(args.state_dir, args.user, args.access)
        return asyncio.run(run_invoke(args))
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    except EXPECTED_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Ctrl-C before the dev stack's own handler is installed is still a normal stop.
        return 0 if args.command == "dev" else 130
    return 0


# ------------------------------------------------------------------------- dev


async def run_dev(config: StackConfig) -> int:
    stack = LocalStack(config)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    try:
        starting = asyncio.ensure_future(stack.start())
        waiting = asyncio.ensure_future(stopping.wait())
        await asyncio.wait({starting, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()  # startup errors surface here
            print(stack.banner(), flush=True)
            await waiting
        else:
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
        log.info("stopping")
        return 0
    finally:
        await stack.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


# ----------------------------------------------------------------------- token


def run_token(state_dir: Path, user: str, access: bool) -> int:
    info = read_running_stack(state_dir)
    if info is None:
        print(f"error: no local stack is running with state dir {state_dir} (no live {stack_file(state_dir)}); "
              f"start one with: python -m local_stack dev", file=sys.stderr)
        return 1
    users = info.get("users") or []
    found = next((u for u in users if user in (u.get("name"), u.get("username"), u.get("email"))), None)
    if found is None:
        names = ", ".join(u.get("name", u.get("username")) for u in users) or "none"
        print(f"error: unknown user {user!r} (local users: {names})", file=sys.stderr)
        return 2
    try:
        tokens = aws.initiate_auth(info["awsEndpointUrl"], info["region"], info["userPoolClientId"],
                                   found["username"], found["password"])
    except (ClientError, BotoCoreError) as exc:
        print(f"error: sign-in against {info['awsEndpointUrl']} failed: {exc}", file=sys.stderr)
        return 1
    print(tokens["AccessToken" if access else "IdToken"])
    return 0


# ---------------------------------------------------------------------- invoke


def _read_event(source: str | None) -> object:
    if source is None:
        return {}
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateError(f"cannot read event {source}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise TemplateError(f"event {source} is not valid JSON: {exc}") from None


async def run_invoke(args: argparse.Namespace) -> int:
    event = _read_event(args.event)
    running = read_running_stack(args.state_dir)
    overrides = running.get("parameterOverrides", {}) if running else _overrides(args.parameter_overrides)
    region = running["region"] if running else args.region
    template = Template.load(args.template, parameter_overrides=overrides, region=region)
    names = sorted(template.resources_of_type(SERVERLESS_FUNCTION))
    if args.function not in names:
        print(f"error: no function {args.function!r} in {args.template}; functions: {', '.join(names)}",
              file=sys.stderr)
        return 2

    moto = proxy = None
    try:
        if running:
            # The functions' own endpoint, where their roles apply (stacks started before it: moto's).
            endpoint = running.get("functionsEndpointUrl", running["awsEndpointUrl"])
            physical = {lid: Physical.from_json(p) for lid, p in (running.get("resources") or {}).items()}
            log.info("using the running local stack's AWS endpoint %s", endpoint)
        else:
            # No stack running: an ephemeral moto with the template's tables, just for this call.
            moto = aws.MotoProcess(0)
            await moto.start()
            physical = (await asyncio.to_thread(aws.provision, template, moto.endpoint)).physical
            # The function's calls still go through its IAM role, as in `make dev`.
            proxy = AwsProxy(moto.endpoint, invoker=None, functions_by_name={}, region=region)
            proxy.iam = Iam(function_roles(template, physical))
            await proxy.start()
            endpoint = proxy.endpoint
        spec = template.functions(physical)[args.function]
        runtime = LambdaRuntime({args.function: spec}, aws_endpoint=endpoint, region=region,
                                max_concurrency=1, prefix_logs=False)
        try:
            result = await runtime.invoke(args.function, event)
        except InvocationError as exc:
            print(json.dumps(exc.error))
            return 1
        finally:
            await runtime.close()
        print(json.dumps(result))
        return 0
    finally:
        if proxy:
            await proxy.stop()
        if moto:
            await moto.stop()
