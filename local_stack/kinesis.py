"""Kinesis event source mappings (`AWS::Lambda::EventSourceMapping` whose EventSourceArn is a stream's
`!GetAtt <Stream>.Arn` or an enhanced fan-out consumer's `!GetAtt <Consumer>.ConsumerARN`): reads every shard of
the stream on the embedded endpoint and invokes the function with batches shaped as Lambda delivers them.

Honoured as AWS does: BatchSize, MaximumBatchingWindowInSeconds, StartingPosition (LATEST, TRIM_HORIZON),
ParallelizationFactor (concurrent batches per shard, each partition key in one of them, so a key's records stay
in order), MaximumRetryAttempts, FunctionResponseTypes: ReportBatchItemFailures (retried from the earliest
failed record) and MaximumRecordAgeInSeconds (older records are discarded, retried or not). Before it starts, the mapping
checks the function's role as Lambda does when the mapping is created: the reads it makes for the function
(a consumer: kinesis:SubscribeToShard and DescribeStreamConsumer on the consumer, and the stream's reads).

Latency: moto tells the stack which shards of which stream got records (moto_server.announce_stream_records:
however they were put, through the functions' endpoint, to moto directly or by a Step Functions task), which
wakes the stream's pollers at once, as an enhanced fan-out consumer is pushed records; a woken poller reads
those shards, not all of them. Every SAFETY_POLL, every shard is read, in case a notice was lost."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import zlib
from dataclasses import dataclass
from typing import Any

from .serving import Invoker
from .streams import deliver, failed_from

log = logging.getLogger("local_stack")

# Only for a lost notice: reading every shard ten times a second, per mapping, cost moto and the stack a large
# share of a core with nothing happening.
SAFETY_POLL = 1.0
# What Lambda reads of a stream for a mapping (the AWSLambdaKinesisExecutionRole's reads), and of a consumer.
STREAM_READS = ("kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kinesis:GetRecords",
                "kinesis:GetShardIterator", "kinesis:ListShards")
CONSUMER_READS = ("kinesis:SubscribeToShard", "kinesis:DescribeStreamConsumer")


@dataclass(frozen=True)
class KinesisMapping:
    name: str  # the mapping's logical id
    function: str  # logical id
    stream: str  # logical id of the stream
    consumer: str | None = None  # logical id of the enhanced fan-out consumer, if it reads through one
    batch_size: int = 100
    batching_window: float = 0.0
    parallelization: int = 1
    max_retries: int = -1  # -1: until the record expires
    max_record_age: float = -1  # seconds; -1: no limit
    starting_position: str = "LATEST"
    report_item_failures: bool = False


def kinesis_mappings(template: Any) -> list[KinesisMapping]:
    """Every mapping of a Kinesis stream (or of a consumer of one) to a function in the template."""
    mappings = []
    resources = template.expanded["Resources"]
    for logical_id, resource in template.deployed("AWS::Lambda::EventSourceMapping").items():
        props = resource.get("Properties", {})
        source = _get_att(props.get("EventSourceArn"))
        if source is None:
            continue
        target, attribute = source
        kind = resources.get(target, {}).get("Type")
        consumer = None
        if kind == "AWS::Kinesis::StreamConsumer" and attribute == "ConsumerARN":
            consumer = target
            stream_of = _get_att((resources[target].get("Properties") or {}).get("StreamARN"))
            if stream_of is None or stream_of[1] != "Arn":
                raise ValueError(f"{target}.StreamARN: the local stack needs !GetAtt <Stream>.Arn")
            target = stream_of[0]
        elif not (kind == "AWS::Kinesis::Stream" and attribute == "Arn"):
            continue  # not a Kinesis stream (DynamoDB streams: streams.py)
        function = template.function_of(props.get("FunctionName"), f"{logical_id}.FunctionName")

        def number(name: str, default: float, props: dict = props) -> float:
            return float(template.resolve(props.get(name, default)))

        mappings.append(KinesisMapping(
            name=logical_id, function=function, stream=target, consumer=consumer,
            batch_size=int(number("BatchSize", 100)), batching_window=number("MaximumBatchingWindowInSeconds", 0),
            parallelization=int(number("ParallelizationFactor", 1)),
            max_retries=int(number("MaximumRetryAttempts", -1)),
            max_record_age=number("MaximumRecordAgeInSeconds", -1),
            starting_position=str(template.resolve(props.get("StartingPosition", "LATEST"))),
            report_item_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or [])))
    return mappings


def _get_att(value: Any) -> tuple[str, str] | None:
    if not (isinstance(value, dict) and "Fn::GetAtt" in value):
        return None
    target = value["Fn::GetAtt"]
    resource, attribute = target.split(".", 1) if isinstance(target, str) else target
    return resource, attribute


def required_permissions(stream_arn: str, consumer_arn: str | None) -> list[tuple[str, str]]:
    """The (action, resource) pairs the function's role must allow for Lambda to run the mapping."""
    needed = [(action, stream_arn) for action in STREAM_READS]
    if consumer_arn:
        needed += [(action, consumer_arn) for action in CONSUMER_READS]
    return needed


def refusal(role: Any, stream_arn: str, consumer_arn: str | None) -> str | None:
    """Why Lambda would refuse to create the mapping for a function with this role (iam.Role), or None."""
    for action, resource in required_permissions(stream_arn, consumer_arn):
        if not role.allows(action, resource):
            return role.denial(action, resource)
    return None


class KinesisPoller:
    """One mapping: reads every shard of the stream and invokes the function, a lane per
    ParallelizationFactor (a partition key always in the same lane, so its records stay in order)."""

    def __init__(self, mapping: KinesisMapping, stream_arn: str, kinesis_client: Any, invoker: Invoker,
                 region: str) -> None:
        self.mapping = mapping
        self.stream_arn = stream_arn
        self._client = kinesis_client
        self._invoker = invoker
        self._region = region
        self._wake = asyncio.Event()
        # The shards to read on waking (None: all). Reading only those saves a GetRecords per idle shard at
        # every put: on the 2-core machine, polling was a large share of the local stack's CPU.
        self._woken: set[str] | None = set()
        self._tasks: list[asyncio.Task] = []
        self._lanes: list[asyncio.Queue] = []

    def wake(self, shards: set[str] | None = None) -> None:
        """Records may have been put (to these shards; None: any): read now (an enhanced fan-out consumer is
        pushed them)."""
        if shards is None or self._woken is None:
            self._woken = None
        else:
            self._woken |= shards
        self._wake.set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._lanes = [asyncio.Queue() for _ in range(max(1, self.mapping.parallelization))]
        self._tasks = [loop.create_task(self._read())] + [loop.create_task(self._deliver_lane(q)) for q in self._lanes]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._tasks = []

    async def _iterators(self) -> dict[str, str]:
        # By name: moto's shard iterators name the stream they were asked by (an ARN's would name none).
        name = self.stream_arn.rsplit("/", 1)[-1]
        shards = (await asyncio.to_thread(self._client.list_shards, StreamName=name))["Shards"]
        kind = "LATEST" if self.mapping.starting_position == "LATEST" else "TRIM_HORIZON"
        iterators = {}
        for shard in shards:
            iterators[shard["ShardId"]] = (await asyncio.to_thread(
                self._client.get_shard_iterator, StreamName=name, ShardId=shard["ShardId"],
                ShardIteratorType=kind))["ShardIterator"]
        return iterators

    async def _read(self) -> None:
        iterators: dict[str, str] = {}
        read_all = True
        pending: list[dict] = []
        window_started: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            try:
                if not iterators:
                    iterators, read_all = await self._iterators(), True
                woken, self._woken = self._woken, set()
                self._wake.clear()
                if woken is None or not woken <= iterators.keys():
                    read_all = True  # a wake for any shard (or one this poller does not know yet)
                for shard_id, iterator in list(iterators.items()):
                    if not read_all and shard_id not in woken:
                        continue
                    page = await asyncio.to_thread(self._client.get_records, ShardIterator=iterator, Limit=10000)
                    iterators[shard_id] = page.get("NextShardIterator") or iterator
                    pending += [self._event_record(shard_id, r) for r in page.get("Records", [])]
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a moto hiccup must not stop the mapping
                log.warning("kinesis %s: %s", self.mapping.name, exc)
                iterators = {}
                await asyncio.sleep(1)
                continue
            read_all = False
            if pending and window_started is None:
                window_started = loop.time()
            waited = window_started is not None and loop.time() - window_started >= self.mapping.batching_window
            if pending and (len(pending) >= self.mapping.batch_size or waited):
                for record in pending:
                    lane = zlib.crc32(record["kinesis"]["partitionKey"].encode()) % len(self._lanes)
                    self._lanes[lane].put_nowait(record)
                pending, window_started = [], None
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), SAFETY_POLL if not pending else
                                       max(0.0, self.mapping.batching_window - (loop.time() - window_started)))
            except TimeoutError:
                read_all = True  # the safety poll: records whose notice was lost are found too

    def _event_record(self, shard_id: str, record: dict) -> dict:
        arrival = record.get("ApproximateArrivalTimestamp")
        sequence = record["SequenceNumber"]
        return {
            "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": record["PartitionKey"],
                        "sequenceNumber": sequence, "data": base64.b64encode(record["Data"]).decode(),
                        "approximateArrivalTimestamp": arrival.timestamp() if hasattr(arrival, "timestamp")
                        else time.time()},
            "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": f"{shard_id}:{sequence}",
            "eventName": "aws:kinesis:record", "awsRegion": self._region, "eventSourceARN": self.stream_arn,
        }

    async def _deliver_lane(self, queue: asyncio.Queue) -> None:
        while True:
            batch = [await queue.get()]
            while len(batch) < self.mapping.batch_size and not queue.empty():
                batch.append(queue.get_nowait())
            await self._deliver(batch)

    def _fresh(self, batch: list[dict]) -> list[dict]:
        """The batch without the records older than MaximumRecordAgeInSeconds (Lambda discards them)."""
        if self.mapping.max_record_age < 0:
            return batch
        oldest = time.time() - self.mapping.max_record_age
        fresh = [r for r in batch if r["kinesis"]["approximateArrivalTimestamp"] >= oldest]
        if len(fresh) < len(batch):
            log.warning("kinesis %s: %d records older than MaximumRecordAgeInSeconds discarded", self.mapping.name,
                        len(batch) - len(fresh))
        return fresh

    async def _deliver(self, batch: list[dict]) -> None:
        await deliver(self._invoker, self.mapping.function, batch, max_retries=self.mapping.max_retries,
                      failed_from=self._failed_from, label=f"kinesis {self.mapping.name}", fresh=self._fresh)

    def _failed_from(self, batch: list[dict], result: Any) -> int | None:
        return failed_from(batch, result, self.mapping.report_item_failures,
                           lambda record: record["kinesis"]["sequenceNumber"])
