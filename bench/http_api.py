"""HTTP session API under 20 concurrent clients, beside the raw DynamoDB call
each operation makes, against the same local endpoint in the same run.

create -> PutItem, get -> GetItem, update -> UpdateItem, delete -> UpdateItem, and since
DELETE also starts the teardown workflow, delete is shown beside UpdateItem + StartExecution
(the two raw calls it makes) as well.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import boto3
import httpx

from local_stack.aws import initiate_auth

from .stats import row, summary

CLIENTS = 20
# On AWS, 20 concurrent requests run in 20 execution environments. With the local default of 2 workers a
# function's requests queue in front of them, and the figure measures that queue, not the handler (DELETE,
# the slowest, went from 3.9 s to 1.4 s p50 at 10). 10 workers per function keep the machine's memory and
# two cores within reach while the 20 clients still contend for moto, as the raw baseline's 20 threads do.
STACK_ARGS = ["--max-concurrency", "10"]
CYCLES = 25  # per client: 20 x 25 = 500 samples of each operation
GOAL_RATIO = 2.0


async def session_cycles(url: str, token: str, clients: int, cycles: int,
                         warmup: int = 0) -> dict[str, list[float]]:
    """`clients` concurrent clients each run create -> get -> update -> delete `cycles` times, after
    `warmup` untimed cycles: the latency of each operation in ms (here and against a deployed stack)."""
    samples: dict[str, list[float]] = {"create": [], "get": [], "update": [], "delete": []}
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as api:
        async def timed(op: str, method: str, path: str, expect: int, **kw) -> httpx.Response:
            start = time.perf_counter()
            response = await api.request(method, path, **kw)
            samples[op].append((time.perf_counter() - start) * 1000)
            if response.status_code != expect:
                raise RuntimeError(f"{op}: {response.status_code} {response.text[:200]}")
            return response

        async def client(cycles: int) -> None:
            for _ in range(cycles):
                sid = (await timed("create", "POST", "/sessions", 201, json={"sourceLanguage": "en"})).json()["sessionId"]
                await timed("get", "GET", f"/sessions/{sid}", 200)
                await timed("update", "PATCH", f"/sessions/{sid}", 200, json={"status": "paused"})
                await timed("delete", "DELETE", f"/sessions/{sid}", 204)

        if warmup:
            await asyncio.gather(*(client(warmup) for _ in range(clients)))  # warm every worker
            for values in samples.values():
                values.clear()
        await asyncio.gather(*(client(cycles) for _ in range(clients)))
    return samples


def _raw_samples(info: dict) -> dict[str, list[float]]:
    ddb = boto3.client("dynamodb", endpoint_url=info["awsEndpointUrl"], region_name=info["region"],
                       aws_access_key_id="local", aws_secret_access_key="local")
    table = info["tableName"]
    sfn = boto3.client("stepfunctions", endpoint_url=info["awsEndpointUrl"], region_name=info["region"],
                       aws_access_key_id="local", aws_secret_access_key="local")
    machine = next(iter(info["stateMachines"].values()))
    samples: dict[str, list[float]] = {"PutItem": [], "GetItem": [], "UpdateItem": [],
                                       "UpdateItem+StartExecution": []}

    def timed(op: str, call, **kw) -> None:
        start = time.perf_counter()
        call(**kw)
        samples[op].append((time.perf_counter() - start) * 1000)

    def client(cycles: int) -> None:
        for _ in range(cycles):
            key = {"pk": {"S": f"BENCH#{uuid.uuid4().hex}"}, "sk": {"S": "META"}}
            timed("PutItem", ddb.put_item, TableName=table, Item={**key, "status": {"S": "active"},
                                                                  "version": {"N": "1"}},
                  ConditionExpression="attribute_not_exists(pk)")
            timed("GetItem", ddb.get_item, TableName=table, Key=key)
            def update(status: str) -> None:
                ddb.update_item(TableName=table, Key=key, UpdateExpression="SET #s = :s ADD version :one",
                                ConditionExpression="attribute_exists(pk)", ExpressionAttributeNames={"#s": "status"},
                                ExpressionAttributeValues={":s": {"S": status}, ":one": {"N": "1"}},
                                ReturnValues="ALL_NEW")

            timed("UpdateItem", update, status="paused")
            timed("UpdateItem", update, status="ended")

            def end(status: str) -> None:
                update(status)
                sfn.start_execution(stateMachineArn=machine, name=f"bench-{uuid.uuid4().hex}",
                                    input='{"sessionId": "bench-none-000"}')

            timed("UpdateItem+StartExecution", end, status="ended")

    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(client, [2] * CLIENTS))
        for values in samples.values():
            values.clear()
        list(pool.map(client, [CYCLES] * CLIENTS))
    return samples


def run(info: dict) -> list[dict]:
    user = info["users"][0]
    token = initiate_auth(info["awsEndpointUrl"], info["region"], info["userPoolClientId"],
                          user["username"], user["password"])["IdToken"]
    raw = _raw_samples(info)
    api = asyncio.run(session_cycles(info["httpApiUrl"], token, CLIENTS, CYCLES, warmup=2))
    raw_again = _raw_samples(info)  # before and after, so drift on a noisy machine shows
    for op, values in raw_again.items():
        raw[op] += values
    rows = []
    for op, baseline_op in (("create", "PutItem"), ("get", "GetItem"), ("update", "UpdateItem"),
                            ("delete", "UpdateItem"), ("delete", "UpdateItem+StartExecution")):
        result, baseline = summary(api[op]), summary(raw[baseline_op])
        rows.append(row(f"HTTP {op} ({CLIENTS} clients) vs raw {baseline_op}", result, baseline,
                        goal=f"p95 <= {GOAL_RATIO:g}x baseline p95",
                        met=result["p95"] <= GOAL_RATIO * baseline["p95"]))
    return rows
