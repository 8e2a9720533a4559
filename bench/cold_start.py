"""Cold start of every function in template.yaml, beside a bare boto3 process, in the same run.

Each sample is a fresh `python -I bench/cold_probe.py` (this interpreter: the .venv's python3.13) with the
function's Lambda environment -- the template's variables with Globals merged, AWS_REGION, fake credentials,
AWS_ENDPOINT_URL, POWERTOOLS_TRACE_DISABLED, exactly as the local stack's workers get it
(local_stack.lambdas.lambda_environment) -- and sys.path = the function's folder, then layers/session_core
(what Lambda has at /var/task and /opt/python). Measured from just before the process is spawned to:
the handler module imported, and the first invocation (its sample event, events/<folder>.json) answered.
Tracing is on, as on AWS (BENCH_COLD_TRACING=0 turns it off).

The AWS endpoint is a moto server in this process, provisioned from the template as the local stack does it
(table, user pool and users, Kinesis stream, state machine); the WebSocket Management API is a stub that
answers 200/204. Before every sample the table is emptied and seeded with the sample events' session
(golden-eagle-427, active, with the events' speaker connection and one listener), so every first
invocation does its real work and gets the same answer (shown in the row); the authorizer's sample token is
replaced by a real token of the local user pool (its owner owns the seeded session), so its first request
fetches the JWKS and verifies a signature.

Baseline: a fresh process, same environment, that imports boto3, makes a DynamoDB client and does one
GetItem of the seeded session. Function and baseline samples are interleaved in shuffled rounds (each round:
every function once and BASELINES_PER_ROUND baselines), so they share the machine's noise. Goal: p50 and
p95 of "first answer" at most 1.2x the baseline's (GOALS: lower for what makes no AWS call; the authorizer
is measured as an anonymous listener and as a speaker with a token). One more run per function with
`-X importtime` gives the import profile: the JSON copy of each row carries its top packages (self time
summed per top-level package) and its slowest top-level imports (cumulative).

BENCH_COLD_BEFORE=<git revision>: every function is measured a second time, in the same rounds, from that
revision's functions/ and layers/ (`git archive`), with this checkout's environment and events; its rows are
prefixed `[<revision>]` and carry no goal. BENCH_COLD_PEER=<folder>: the published peer's HTTP session
handler (the folder holding its handler.py, from a checkout of the peer's repository; nothing of it is kept
here) is measured in the same rounds, answering the sample GET against a table of its own key schema, and
each HTTP function gets a row with the peer's figures as its baseline.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jwt
from moto.server import ThreadedMotoServer

from local_stack import aws
from local_stack.lambdas import lambda_environment
from local_stack.moto_server import make_dynamodb_thread_safe
from local_stack.template import DEFAULT_REGION, Template
from tests.support.management_api import FakeManagementApi

from .stats import row, summary
from .support import revision_tree

STACK = False  # needs no local stack: it starts its own moto endpoint
ROOT = Path(__file__).resolve().parents[1]
PROBE = Path(__file__).with_name("cold_probe.py")
REPS = int(os.environ.get("BENCH_COLD_REPS", "20"))  # samples per function
# Tracing on, as on AWS (Tracing: Active): the X-Ray SDK is imported and patches botocore; segments go
# to the (absent) daemon's UDP port, as they would to Lambda's. BENCH_COLD_TRACING=0 measures without.
TRACING = os.environ.get("BENCH_COLD_TRACING", "1") != "0"
TRACE_HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
BASELINES_PER_ROUND = 3
# Goals, as ratios to the baseline's p50 and p95: a function that calls AWS pays the baseline's whole work
# (boto3, a client, a call) and may add 0.2x for its own libraries; the authorizer's anonymous listener
# path makes no AWS call and loads no AWS SDK; heartbeat and $default make no call either.
GOAL_RATIO = 1.2
GOALS = {"WsAuthorizerFunction, anonymous listener": 0.5, "WsHeartbeatFunction": 0.75, "WsDefaultFunction": 0.75}
TOP = 12  # entries of each import-profile list
BEFORE = os.environ.get("BENCH_COLD_BEFORE", "")  # a git revision measured beside this checkout
PEER = os.environ.get("BENCH_COLD_PEER", "")  # the peer's http_session_handler folder
# One more sample of each under valgrind's callgrind: instructions, which a busy machine does not change.
INSTRUCTIONS = os.environ.get("BENCH_COLD_INSTRUCTIONS", "0") != "0"
# Some functions only (comma-separated logical IDs, e.g. GetSessionFunction,WsSendAudioFunction); all by default.
ONLY = {name for name in os.environ.get("BENCH_COLD_ONLY", "").split(",") if name}
PEER_NAME = "peer's HTTP session handler (GET)"
PEER_TABLE = "peer-sessions"  # its own table: key sessionId
# Each HTTP function against the peer's handler, side by side: at or below it.
HTTP_FUNCTIONS = ("CreateSessionFunction", "DeleteSessionFunction", "GetSessionFunction", "UpdateSessionFunction")

# What the sample events in events/ name.
SESSION_ID = "golden-eagle-427"
# The authorizer is measured twice: a speaker with a token (PyJWT, the JWKS fetch, a signature) and an
# anonymous listener (the crowd's path).
ANONYMOUS_LISTENER = {"sessionId": SESSION_ID, "role": "listener", "targetLanguage": "es"}
# $connect too: the sample event is the speaker (UpdateItem + PutItem); a listener joins the crowd with
# PutItem + UpdateItem, on a connection of its own.
LISTENER_JOIN = {"requestContext.connectionId": "Lx3hQnNewListnr=",
                 "requestContext.authorizer": {"principalId": "anonymous", **ANONYMOUS_LISTENER, "userId": "",
                                               "legacy": False}}
EVENT_USER = "11111111-2222-3333-4444-555555555555"
SPEAKER_CONNECTION, LISTENER_CONNECTION = "Lx3fYeWnoAMCJfQ=", "Lx3gAbCdoAMCKaB="


def seed(ddb, table: str, owner: str) -> None:
    """Empties the table, then puts the sample events' session (owned by `owner`), its speaker
    connection and one listener."""
    items, start = [], {}
    while True:
        page = ddb.scan(TableName=table, ProjectionExpression="pk, sk", **start)
        items += page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            break
        start = {"ExclusiveStartKey": page["LastEvaluatedKey"]}
    for i in range(0, len(items), 25):
        ddb.batch_write_item(RequestItems={table: [{"DeleteRequest": {"Key": k}} for k in items[i:i + 25]]})
    now = int(time.time())
    pk = {"S": f"SESSION#{SESSION_ID}"}
    n = lambda v: {"N": str(v)}
    ddb.put_item(TableName=table, Item={
        "pk": pk, "sk": {"S": "META"}, "sessionId": {"S": SESSION_ID}, "speakerId": {"S": owner},
        "sourceLanguage": {"S": "en"}, "qualityTier": {"S": "standard"}, "status": {"S": "active"},
        "listenerCount": n(1), "createdAt": n(now - 60), "updatedAt": n(now - 60), "expiresAt": n(now + 86400),
        "version": n(1), "speakerConnectionId": {"S": SPEAKER_CONNECTION}})
    for connection, role, user in ((SPEAKER_CONNECTION, "speaker", owner), (LISTENER_CONNECTION, "listener", "")):
        ddb.put_item(TableName=table, Item={
            "pk": pk, "sk": {"S": f"CONN#{connection}"}, "connectionId": {"S": connection},
            "sessionId": {"S": SESSION_ID}, "role": {"S": role}, "userId": {"S": user},
            "targetLanguage": {"S": ""}, "connectedAt": n(now - 30), "expiresAt": n(now + 7800)})


def probe(config: dict, env: dict, *, importtime: bool = False, instructions: bool = False) -> dict:
    """One fresh process; times in ms from just before the spawn (under callgrind: its instruction count)."""
    args = [sys.executable, "-I", *(["-X", "importtime"] if importtime else []), str(PROBE), json.dumps(config)]
    if instructions:
        args = [shutil.which("valgrind") or "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *args]
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.run(args, env=env, capture_output=True, timeout=120, check=False)
    now_used = resource.getrusage(resource.RUSAGE_CHILDREN)
    # The process's own CPU (user + system, to its exit): what a busy machine's waiting does not inflate.
    cpu = (now_used.ru_utime + now_used.ru_stime - used.ru_utime - used.ru_stime) * 1000
    lines = proc.stdout.decode(errors="replace").strip().splitlines()
    if proc.returncode or not lines:
        raise RuntimeError(f"cold probe {config.get('function_name', 'baseline')} exited {proc.returncode}: "
                           f"{proc.stderr.decode(errors='replace')[-1500:]}")
    result = json.loads(lines[-1])
    stderr = proc.stderr.decode(errors="replace")
    collected = re.search(r"Collected : (\d+)", stderr)
    return {"imported": (result["imported"] - started) * 1000, "done": (result["done"] - started) * 1000,
            "cpu": cpu, "outcome": result["outcome"], "stderr": stderr,
            "instructions": int(collected.group(1)) if collected else None}


def import_profile(stderr: str) -> dict:
    """`-X importtime` lines -> total, self time per top-level package, slowest top-level imports (ms)."""
    total, packages, nested = 0.0, collections.Counter(), []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        self_us, cumulative_us, name = line[len("import time:"):].split("|", 2)
        stripped, depth = name.strip(), (len(name) - len(name.lstrip()) - 1) // 2
        packages[stripped.split(".")[0]] += int(self_us) / 1000
        if depth == 0:
            total += int(cumulative_us) / 1000
        elif depth <= 3:  # what the handler module (or boto3) pulls in, three levels down
            nested.append((stripped, int(cumulative_us) / 1000))
    return {"total_ms": round(total, 1),
            "top_packages_self_ms": [[p, round(ms, 1)] for p, ms in packages.most_common(TOP)],
            "top_imports_cumulative_ms": [[m, round(ms, 1)] for m, ms in sorted(nested, key=lambda x: -x[1])[:TOP]]}


def _environments(template: Template, endpoint: str, provisioned: aws.Provisioned, management_url: str) -> dict:
    """Each function's Lambda environment, with the local stack's endpoint substitutions."""
    pool_ids = [provisioned.user_pool_id] if provisioned.user_pool_id else []
    envs = {}
    for lid, spec in template.functions(provisioned.physical).items():
        env = lambda_environment(spec, aws_endpoint=endpoint, region=template.region, log_stream="cold-start")
        for key, value in list(env.items()):
            if ".execute-api." in value and value.startswith("https://"):
                env[key] = management_url  # WEBSOCKET_MANAGEMENT_URL
        jwks = aws.local_jwks_url(env.get("JWT_ISSUER", ""), endpoint, template.region, pool_ids)
        if jwks and not env.get("JWKS_URL"):
            env["JWKS_URL"] = jwks
        if TRACING:
            env |= {"POWERTOOLS_TRACE_DISABLED": "false", "_X_AMZN_TRACE_ID": TRACE_HEADER}
        envs[lid] = (spec, env)
    return envs


def run(info: dict | None = None) -> list[dict]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server: one line per request otherwise
    template = Template.load(ROOT / "template.yaml", region=DEFAULT_REGION)
    # moto as the local stack runs it: its TransactWriteItems would otherwise deep-copy the whole table with
    # its stream history (every seed() write of the run) and grow slower with every sample.
    make_dynamodb_thread_safe()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    stub = FakeManagementApi()  # 200 to every post, 204 to every close
    try:
        endpoint = f"http://127.0.0.1:{server.get_host_and_port()[1]}"
        provisioned = aws.provision(template, endpoint)
        with tempfile.TemporaryDirectory(prefix="bench-cold-before-") as folder:
            before = revision_tree(BEFORE, Path(folder) / "tree") if BEFORE else None
            return _measure(template, endpoint, provisioned, stub.url, before)
    finally:
        stub.stop()
        server.stop()


def _measure(template: Template, endpoint: str, provisioned: aws.Provisioned, management_url: str,
             before: Path | None) -> list[dict]:
    table = next(iter(provisioned.tables.values()))
    ddb = aws.client("dynamodb", endpoint, template.region)
    user = provisioned.users[0]
    token = aws.initiate_auth(endpoint, template.region, provisioned.user_pool_client_id, user.username,
                              user.password)["IdToken"]
    envs = _environments(template, endpoint, provisioned, management_url)

    configs: dict[str, tuple[dict, dict, str]] = {}  # logical id -> (probe config, env, session owner)
    for lid, (spec, env) in sorted(envs.items()):
        if ONLY and lid not in ONLY:
            continue
        folder = spec.code_dir.name
        config = {"mode": "function", "handler": spec.handler,
                  "path": [str(spec.code_dir)] + [str(p) for p in spec.layer_dirs],
                  "event_file": str(ROOT / "events" / f"{folder}.json"), "function_name": spec.function_name,
                  "function_arn": f"arn:aws:lambda:{template.region}:123456789012:function:{spec.function_name}",
                  "memory_size": spec.memory_size}
        owner = EVENT_USER
        if folder == "ws_authorizer":  # a real token of the local pool, whose user owns the session
            configs[f"{lid}, anonymous listener"] = (
                config | {"event_patch": {"queryStringParameters": ANONYMOUS_LISTENER}}, env, owner)
            config["event_patch"] = {"queryStringParameters.token": token}
            owner = jwt.decode(token, options={"verify_signature": False})["sub"]
            lid = f"{lid}, speaker with a token"
        if folder == "ws_connect":
            configs[f"{lid}, listener"] = (config | {"event_patch": LISTENER_JOIN}, env, owner)
            lid = f"{lid}, speaker"
        configs[lid] = (config, env, owner)
    if before is not None:  # the same functions, from the revision's tree
        for name, (config, env, owner) in list(configs.items()):
            path = [str(before / Path(p).relative_to(ROOT)) for p in config["path"]]
            configs[f"[{BEFORE}] {name}"] = (config | {"path": path}, env, owner)
    if PEER:
        configs[PEER_NAME] = _peer(ddb, envs, template.region)
    any_env = next(iter(envs.values()))[1]
    baseline_config = {"mode": "baseline", "table": table,
                       "key": {"pk": {"S": f"SESSION#{SESSION_ID}"}, "sk": {"S": "META"}}}

    def sample(name: str, **kw) -> dict:
        if name == "baseline":
            seed(ddb, table, EVENT_USER)
            return probe(baseline_config, any_env, **kw)
        config, env, owner = configs[name]
        seed(ddb, table, owner)
        return probe(config, env, **kw)

    names = list(configs)
    for name in ["baseline", *names]:  # warm the page cache (and moto), not counted
        sample(name)
    results: dict[str, list[dict]] = {name: [] for name in ["baseline", *names]}
    for round_ in range(REPS):
        order = names + ["baseline"] * BASELINES_PER_ROUND
        random.shuffle(order)
        for name in order:
            results[name].append(sample(name))
        print(f"bench: cold round {round_ + 1}/{REPS}", file=sys.stderr, flush=True)
    profiles = {name: import_profile(sample(name, importtime=True)["stderr"]) for name in ["baseline", *names]}
    counted = {name: sample(name, instructions=True)["instructions"] for name in ["baseline", *names]} \
        if INSTRUCTIONS else {}

    base_done = summary([r["done"] for r in results["baseline"]])
    base_imported = summary([r["imported"] for r in results["baseline"]])
    base_cpu = summary([r["cpu"] for r in results["baseline"]])
    rows = [row("cold baseline: fresh process, import boto3, DynamoDB client, one GetItem", base_done)
            | {"importtime": profiles["baseline"]},
            row("  ↳ baseline: boto3 imported and client made", base_imported),
            row("  ↳ baseline: CPU time of the process (user + system)", base_cpu)]
    for name in names:
        if name == PEER_NAME or name.startswith("["):
            continue
        done = summary([r["done"] for r in results[name]])
        imported = summary([r["imported"] for r in results[name]])
        outcomes = collections.Counter(r["outcome"] for r in results[name])
        ratio_p50 = done["p50"] / base_done["p50"]
        traced = ", tracing on" if TRACING else ""
        goal = GOALS.get(name, GOAL_RATIO)
        entry = row(f"cold {name}{traced}: start to first answer ({', '.join(outcomes)})", done, base_done,
                    goal=f"<= {goal}x baseline p50 and p95")
        entry["met"] = ratio_p50 <= goal and entry["ratio_p95"] <= goal
        rows.append(entry | {"outcomes": dict(outcomes), "importtime": profiles[name]})
        rows.append(row(f"  ↳ {name}: handler imported", imported, base_imported))
        rows.append(row(f"  ↳ {name}: CPU time", summary([r["cpu"] for r in results[name]]), base_cpu))
    rows += _before_rows(names, results, base_done, base_imported, base_cpu) + _peer_rows(
        results, profiles, base_done, base_imported, base_cpu)
    return rows + _instruction_rows(counted)


def _instruction_rows(counted: dict[str, int]) -> list[dict]:
    """One sample each, in millions of instructions, as a ratio to the baseline's (BENCH_COLD_INSTRUCTIONS)."""
    if not counted:
        return []
    base = {"n": 1, "p50": counted["baseline"] / 1e6, "p95": counted["baseline"] / 1e6}
    return [row(f"instructions, {name}: start to first answer", {"n": 1, "p50": n / 1e6, "p95": n / 1e6},
                None if name == "baseline" else base, unit="M instructions")
            for name, n in counted.items()]


def _before_rows(names: list[str], results: dict, base_done: dict, base_imported: dict,
                 base_cpu: dict) -> list[dict]:
    """The revision's figures, against the same baseline; no goal."""
    rows = []
    for name in (n for n in names if n.startswith(f"[{BEFORE}] ")):
        done, imported = (summary([r[key] for r in results[name]]) for key in ("done", "imported"))
        outcomes = ", ".join(collections.Counter(r["outcome"] for r in results[name]))
        rows += [row(f"cold {name}: start to first answer ({outcomes})", done, base_done),
                 row(f"  ↳ {name}: handler imported", imported, base_imported),
                 row(f"  ↳ {name}: CPU time", summary([r["cpu"] for r in results[name]]), base_cpu)]
    return rows


def _peer(ddb, envs: dict, region: str) -> tuple[dict, dict, str]:
    """The peer's handler: its probe config, GetSessionFunction's environment plus the variables it reads,
    and a table of its key schema holding the sample session."""
    ddb.create_table(TableName=PEER_TABLE, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "sessionId", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "sessionId", "KeyType": "HASH"}])
    now = int(time.time())
    ddb.put_item(TableName=PEER_TABLE, Item={
        "sessionId": {"S": SESSION_ID}, "speakerUserId": {"S": EVENT_USER}, "sourceLanguage": {"S": "en"},
        "qualityTier": {"S": "standard"}, "status": {"S": "active"}, "listenerCount": {"N": "1"},
        "createdAt": {"N": str(now * 1000)}, "expiresAt": {"N": str(now + 86400)}})
    spec, env = next((spec, env) for spec, env in envs.values() if spec.code_dir.name == "get_session")
    env = env | {"SESSIONS_TABLE": PEER_TABLE, "CONNECTIONS_TABLE": "peer-connections", "REGION": region}
    config = {"mode": "function", "handler": "handler.lambda_handler", "path": [str(Path(PEER).resolve())],
              "event_file": str(ROOT / "events" / "get_session.json"), "function_name": "peer-http-session-handler",
              "function_arn": f"arn:aws:lambda:{region}:123456789012:function:peer-http-session-handler",
              "memory_size": spec.memory_size}
    return config, env, EVENT_USER


def _peer_rows(results: dict, profiles: dict, base_done: dict, base_imported: dict, base_cpu: dict) -> list[dict]:
    """The peer's figures against the baseline, then each HTTP function against the peer's."""
    if PEER_NAME not in results:
        return []
    peer_done, peer_imported = (summary([r[key] for r in results[PEER_NAME]]) for key in ("done", "imported"))
    outcomes = ", ".join(collections.Counter(r["outcome"] for r in results[PEER_NAME]))
    rows = [row(f"cold {PEER_NAME}: start to first answer ({outcomes})", peer_done, base_done)
            | {"importtime": profiles[PEER_NAME]},
            row(f"  ↳ {PEER_NAME}: handler imported", peer_imported, base_imported)]
    peer_cpu = summary([r["cpu"] for r in results[PEER_NAME]])
    rows.append(row(f"  ↳ {PEER_NAME}: CPU time", peer_cpu, base_cpu))
    traced = ", tracing on" if TRACING else ""
    for name in HTTP_FUNCTIONS:
        if name not in results:
            continue
        done, imported = (summary([r[key] for r in results[name]]) for key in ("done", "imported"))
        entry = row(f"cold {name}{traced} vs the peer's handler: start to first answer", done, peer_done,
                    goal="<= 1x the peer's p50 and p95")
        entry["met"] = entry["ratio_p50"] <= 1 and entry["ratio_p95"] <= 1
        rows += [entry, row(f"  ↳ {name} vs the peer's handler: handler imported", imported, peer_imported),
                 row(f"  ↳ {name} vs the peer's handler: CPU time", summary([r["cpu"] for r in results[name]]),
                     peer_cpu)]
    return rows
