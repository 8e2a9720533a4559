"""moto's own process tells the stack which streams got records, and the pollers read on that notice
instead of polling: a write made to moto directly (not through the functions' endpoint) reaches the mapped
function at once, and with nothing happening the pollers leave moto idle."""

from __future__ import annotations

import asyncio
import os
import time

from local_stack import aws
from local_stack.kinesis import KinesisMapping, KinesisPoller
from local_stack.stack import _waker
from local_stack.streams import StreamMapping, StreamPoller

REGION = "eu-west-1"


class Recorder:
    """An invoker that notes when each batch arrived."""

    def __init__(self) -> None:
        self.batches: list[tuple[float, list]] = []

    async def invoke(self, function: str, event: dict, request_id: str | None = None) -> None:
        self.batches.append((time.monotonic(), event["Records"]))


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (independent of the machine's load)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _with_pollers(scenario):
    """moto with a table's stream and a 4-shard Kinesis stream, each read by a mapping wired as the stack
    wires them; runs scenario(moto, ddb, kinesis, recorder)."""
    moto = aws.MotoProcess(0)
    await moto.start()
    pollers: list = []
    try:
        ddb = aws.client("dynamodb", moto.endpoint, REGION)
        kinesis = aws.client("kinesis", moto.endpoint, REGION)
        stream_arn = ddb.create_table(
            TableName="sessions", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )["TableDescription"]["LatestStreamArn"]
        kinesis.create_stream(StreamName="audio", ShardCount=4)
        audio_arn = kinesis.describe_stream_summary(StreamName="audio")["StreamDescriptionSummary"]["StreamARN"]
        recorder = Recorder()
        stream_poller = StreamPoller(StreamMapping(function="Status", table="Sessions"), stream_arn,
                                     aws.client("dynamodbstreams", moto.endpoint, REGION), recorder)
        kinesis_poller = KinesisPoller(KinesisMapping(name="M", function="Audio", stream="Audio"), audio_arn,
                                       kinesis, recorder, REGION)
        pollers = [stream_poller, kinesis_poller]
        for poller in pollers:
            await poller.start()
        moto.on_records = _waker([stream_poller], [kinesis_poller])
        await asyncio.sleep(1.5)  # the first reads (positions, iterators) are done
        return await scenario(moto, ddb, kinesis, recorder)
    finally:
        for poller in pollers:
            await poller.stop()
        await moto.stop()


def test_a_write_made_to_moto_directly_reaches_the_mapped_function_at_once(monkeypatch):
    # Only the notice can make it in time: no safety poll during the test.
    monkeypatch.setattr("local_stack.streams.SAFETY_POLL", 30.0)
    monkeypatch.setattr("local_stack.kinesis.SAFETY_POLL", 30.0)

    async def scenario(moto, ddb, kinesis, recorder):
        delays = []
        for put in (lambda: ddb.put_item(TableName="sessions", Item={"pk": {"S": "s1"}}),
                    lambda: kinesis.put_record(StreamName="audio", Data=b"chunk", PartitionKey="s1")):
            seen, written = len(recorder.batches), time.monotonic()
            await asyncio.to_thread(put)
            while len(recorder.batches) == seen and time.monotonic() - written < 3:
                await asyncio.sleep(0.005)
            delays.append(recorder.batches[-1][0] - written if len(recorder.batches) > seen else None)
        return delays, [records for _, records in recorder.batches]

    delays, batches = asyncio.run(_with_pollers(scenario))
    print("delays from the write to the function:", delays)
    assert [len(b) for b in batches] == [1, 1]
    assert batches[0][0]["eventName"] == "INSERT" and batches[0][0]["dynamodb"]["Keys"] == {"pk": {"S": "s1"}}
    assert batches[1][0]["kinesis"]["partitionKey"] == "s1"
    assert all(delay is not None and delay < 0.3 for delay in delays), delays


def test_with_nothing_happening_the_pollers_leave_moto_idle():
    async def scenario(moto, ddb, kinesis, recorder):
        pid = moto._proc.pid
        moto_before, own_before, started = _cpu_seconds(pid), time.process_time(), time.monotonic()
        await asyncio.sleep(4)
        elapsed = time.monotonic() - started
        return (_cpu_seconds(pid) - moto_before) / elapsed, (time.process_time() - own_before) / elapsed

    moto_share, own_share = asyncio.run(_with_pollers(scenario))
    print(f"idle: moto {moto_share:.3f}, the pollers' process {own_share:.3f} CPU-seconds a second")
    # Polling a stream and four shards every 50-100 ms cost moto about 0.2 of a core.
    assert moto_share < 0.05
    assert own_share < 0.05


def test_moto_names_the_table_and_the_shards_that_got_records():
    async def scenario():
        moto = aws.MotoProcess(0)
        await moto.start()
        notices: list[dict] = []
        moto.on_records = notices.append
        try:
            ddb = aws.client("dynamodb", moto.endpoint, REGION)
            kinesis = aws.client("kinesis", moto.endpoint, REGION)
            for name, stream in (("plain", None), ("streamed", {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"})):
                ddb.create_table(TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                                 AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                                 BillingMode="PAY_PER_REQUEST", **({"StreamSpecification": stream} if stream else {}))
            kinesis.create_stream(StreamName="audio", ShardCount=4)
            await asyncio.to_thread(ddb.put_item, TableName="plain", Item={"pk": {"S": "a"}})
            await asyncio.sleep(0.3)
            quiet = list(notices)  # a table without a stream has no records to announce
            await asyncio.to_thread(ddb.transact_write_items, TransactItems=[
                {"Put": {"TableName": "streamed", "Item": {"pk": {"S": "b"}}}}])
            answer = await asyncio.to_thread(kinesis.put_records, StreamName="audio", Records=[
                {"Data": b"x", "PartitionKey": f"key{i}"} for i in range(8)])
            await asyncio.sleep(0.3)
        finally:
            await moto.stop()
        return quiet, notices[len(quiet):], {r["ShardId"] for r in answer["Records"]}

    quiet, notices, shards_written = asyncio.run(scenario())
    assert quiet == []
    tables = {t for notice in notices for t in notice["dynamodb"]}
    shards = {s for notice in notices for s in notice["kinesis"].get("audio", [])}
    assert tables == {"streamed"}
    assert shards == shards_written and len(shards) > 1
