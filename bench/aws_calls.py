"""CPU per AWS call through the local stack's endpoint (issue 25), by process.

Starts moto (local_stack/moto_server.py, as the stack does) and the AWS endpoint (local_stack/aws_proxy.py)
in a thread of this process with strict IAM: the calls are signed with a function's key whose role allows
them, so every call pays the IAM decision, as the functions' calls do. One botocore client makes each kind of
call (DynamoDB GetItem, UpdateItem, DeleteItem, Query; Kinesis PutRecord, GetRecords) one at a time,
`BENCH_CALLS` (default 300) times, first straight to moto (the **baseline**), then through the endpoint.

Rows, per call kind, in CPU milliseconds per call (CPU seconds from /proc, so the machine's load changes
them little):
- **moto ms/call**: moto's process, through the endpoint; baseline: the same call straight to moto;
- **endpoint ms/call**: the endpoint's thread (its event loop: IAM, conflicts, the forward); no baseline;
- **client ms/call**: botocore's (the calling thread: signing, serialising, parsing);
- **moto's WSGI app, GetItem without Flask**: moto's application alone, in this process (no sockets, so
  steadier than the rows above on a loaded machine), with local_stack/moto_server.py's
  dispatch_json_protocols_directly; baseline: the same through moto's Flask app, interleaved in 3 rounds
  (p50: the median round, p95: the worst).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time

import boto3
from botocore.config import Config

from local_stack.aws import MotoProcess
from local_stack.aws_proxy import AwsProxy
from local_stack.iam import Iam, Role, Statement, access_key_for

from .stats import row

STACK = False  # needs no local stack: it starts its own moto and endpoint
CALLS = int(os.environ.get("BENCH_CALLS", "300"))
REGION = "eu-west-1"
TABLE, STREAM = "bench-calls", "bench-calls"
_TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int, tid: int | None = None) -> float:
    """CPU seconds (user + system) of a process, or of one of its threads."""
    path = f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat"
    with open(path) as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


class _NoInvoker:
    async def invoke(self, function: str, event: dict) -> dict:
        raise RuntimeError("no Lambda functions here")


def _role() -> Role:
    # The shape SAM gives a function's role: the table's and the stream's actions on their ARNs.
    statements = (
        Statement.parse({"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:UpdateItem",
                                                        "dynamodb:DeleteItem", "dynamodb:Query", "dynamodb:PutItem"],
                         "Resource": [f"arn:aws:dynamodb:{REGION}:*:table/{TABLE}",
                                      f"arn:aws:dynamodb:{REGION}:*:table/{TABLE}/index/*"]}, "bench"),
        Statement.parse({"Effect": "Allow", "Action": ["kinesis:PutRecord", "kinesis:GetRecords",
                                                        "kinesis:GetShardIterator", "kinesis:DescribeStream"],
                         "Resource": f"arn:aws:kinesis:{REGION}:*:stream/{STREAM}"}, "bench"),
        # A shard iterator names no stream the endpoint can see: it asks for GetRecords on "*" (iam.py).
        Statement.parse({"Effect": "Allow", "Action": "kinesis:GetRecords", "Resource": "*"}, "bench"),
    )
    return Role("BenchFunction", "bench-function", "bench-role", statements)


def _client(service: str, endpoint: str, key: str):
    return boto3.session.Session().client(
        service, region_name=REGION, endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key="x",
        config=Config(retries={"max_attempts": 1}))


def _calls(ddb, kinesis) -> dict:
    """call kind -> one call (each leaves the state as it found it, or grows it by a record)."""
    key = {"pk": {"S": "k"}, "sk": {"S": "s"}}
    iterator = {}

    def get_records():
        if "it" not in iterator:
            shard = kinesis.describe_stream(StreamName=STREAM)["StreamDescription"]["Shards"][0]["ShardId"]
            iterator["it"] = kinesis.get_shard_iterator(StreamName=STREAM, ShardId=shard,
                                                        ShardIteratorType="LATEST")["ShardIterator"]
        iterator["it"] = kinesis.get_records(ShardIterator=iterator["it"], Limit=100)["NextShardIterator"]

    def delete_item():
        ddb.put_item(TableName=TABLE, Item={**key, "sk": {"S": "gone"}})
        ddb.delete_item(TableName=TABLE, Key={**key, "sk": {"S": "gone"}}, ReturnValues="ALL_OLD")

    return {
        "GetItem": lambda: ddb.get_item(TableName=TABLE, Key=key),
        "UpdateItem": lambda: ddb.update_item(TableName=TABLE, Key=key, UpdateExpression="ADD n :one",
                                              ExpressionAttributeValues={":one": {"N": "1"}}),
        "DeleteItem": delete_item,  # with the PutItem it deletes: the row divides by 2 calls
        "Query": lambda: ddb.query(TableName=TABLE, KeyConditionExpression="pk = :k",
                                   ExpressionAttributeValues={":k": {"S": "k"}}),
        "PutRecord": lambda: kinesis.put_record(StreamName=STREAM, Data=bytes(3200), PartitionKey="p"),
        "GetRecords": get_records,
    }


def _provision(endpoint: str) -> None:
    ddb, kinesis = _client("dynamodb", endpoint, "admin"), _client("kinesis", endpoint, "admin")
    ddb.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                           {"AttributeName": "sk", "AttributeType": "S"}])
    ddb.put_item(TableName=TABLE, Item={"pk": {"S": "k"}, "sk": {"S": "s"}, "text": {"S": "x" * 200}})
    kinesis.create_stream(StreamName=STREAM, ShardCount=1)


def _measure(call, moto_pid: int, endpoint_tid: int | None) -> tuple[float, float, float]:
    """CPU ms per call of moto, the endpoint's thread, this (client) thread."""
    for _ in range(20):  # warm: connections, caches
        call()
    me = threading.get_native_id()
    pid = os.getpid()
    start = (_cpu(moto_pid), _cpu(pid, endpoint_tid) if endpoint_tid else 0.0, _cpu(pid, me))
    for _ in range(CALLS):
        call()
    end = (_cpu(moto_pid), _cpu(pid, endpoint_tid) if endpoint_tid else 0.0, _cpu(pid, me))
    return tuple((b - a) * 1000 / CALLS for a, b in zip(start, end, strict=True))


def _dispatch_rows() -> list[dict]:
    """CPU ms per GetItem in moto's WSGI application, straight to DynamoDB's handler vs through Flask."""
    import json

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.test import Client

    from local_stack.moto_server import dispatch_json_protocols_directly

    flask_call = DomainDispatcherApplication.__call__
    dispatch_json_protocols_directly()
    direct_call = DomainDispatcherApplication.__call__
    client = Client(DomainDispatcherApplication(create_backend_app))
    auth = f"AWS4-HMAC-SHA256 Credential=AKID/20250101/{REGION}/dynamodb/aws4_request, SignedHeaders=host, Signature=0"

    def post(target: str, payload: dict) -> None:
        answer = client.post("/", data=json.dumps(payload), headers={
            "X-Amz-Target": f"DynamoDB_20120810.{target}", "Content-Type": "application/x-amz-json-1.0",
            "Authorization": auth})
        assert answer.status_code == 200, answer.get_data()

    try:
        post("CreateTable", {"TableName": TABLE, "BillingMode": "PAY_PER_REQUEST",
                             "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                             "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]})
        post("PutItem", {"TableName": TABLE, "Item": {"pk": {"S": "k"}, "text": {"S": "x" * 200}}})
        spent: dict[str, list[float]] = {"flask": [], "direct": []}
        for _ in range(3):
            for label, call in (("flask", flask_call), ("direct", direct_call)):
                DomainDispatcherApplication.__call__ = call
                for _ in range(50):
                    post("GetItem", {"TableName": TABLE, "Key": {"pk": {"S": "k"}}})
                start = time.thread_time()
                for _ in range(CALLS):
                    post("GetItem", {"TableName": TABLE, "Key": {"pk": {"S": "k"}}})
                spent[label].append((time.thread_time() - start) * 1000 / CALLS)
    finally:
        DomainDispatcherApplication.__call__ = flask_call
    return [row("moto's WSGI app, GetItem without Flask: ms/call",
                {"n": 3 * CALLS, "p50": sorted(spent["direct"])[1], "p95": max(spent["direct"])},
                {"n": 3 * CALLS, "p50": sorted(spent["flask"])[1], "p95": max(spent["flask"])}, unit="cpu ms")]


def _summary(ms: float) -> dict:
    return {"n": CALLS, "p50": ms, "p95": ms}


def run(info: dict | None = None) -> list[dict]:
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    endpoint_tid: list[int] = []

    def serve() -> None:
        endpoint_tid.append(threading.get_native_id())
        asyncio.set_event_loop(loop)
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait()

    def on_loop(coro):
        return asyncio.run_coroutine_threadsafe(coro, loop).result(120)

    moto = MotoProcess()
    on_loop(moto.start())
    proxy = AwsProxy(moto.endpoint, _NoInvoker(), {}, region=REGION)
    role = _role()
    proxy.iam = Iam({role.function: role})
    on_loop(proxy.start())
    try:
        _provision(moto.endpoint)
        key = access_key_for(role.function)
        straight = _calls(_client("dynamodb", moto.endpoint, key), _client("kinesis", moto.endpoint, key))
        through = _calls(_client("dynamodb", proxy.endpoint, key), _client("kinesis", proxy.endpoint, key))
        moto_pid = moto._proc.pid
        rows = []
        for name in straight:
            per = 2 if name == "DeleteItem" else 1
            base_moto, _, base_client = _measure(straight[name], moto_pid, None)
            moto_ms, endpoint_ms, client_ms = _measure(through[name], moto_pid, endpoint_tid[0])
            label = f"{name}{' (+ its PutItem)' if per == 2 else ''}"
            rows += [
                row(f"{label}: moto ms/call", _summary(moto_ms / per), _summary(base_moto / per), unit="cpu ms"),
                row(f"{label}: endpoint ms/call", _summary(endpoint_ms / per), unit="cpu ms"),
                row(f"{label}: client ms/call", _summary(client_ms / per), _summary(base_client / per),
                    unit="cpu ms"),
            ]
        return rows + _dispatch_rows()
    finally:
        on_loop(proxy.stop())
        on_loop(moto.stop())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        time.sleep(0)
