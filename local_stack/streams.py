"""DynamoDB stream event source mappings (`AWS::Lambda::EventSourceMapping`
resources, or a function's `Events: Type: DynamoDB`): polls the table's stream on
the embedded endpoint and invokes the function with batches shaped as Lambda
delivers them, honouring BatchSize, MaximumBatchingWindowInSeconds,
FilterCriteria, MaximumRetryAttempts and FunctionResponseTypes: ReportBatchItemFailures (an
answer's `batchItemFailures` retries the batch from the earliest failed record, as Lambda does).

A poller reads when moto tells the stack the table's stream got records (`wake`, from moto's notices: see
moto_server.announce_stream_records), and every SAFETY_POLL otherwise, in case a notice was lost."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .serving import Invoker

log = logging.getLogger("local_stack")

# Only for a lost notice: reading every mapping's stream 20 times a second cost moto and the stack a large
# share of a core with nothing happening.
SAFETY_POLL = 1.0
# A notice is read no sooner than this after the previous read ended, as the old polling did: in a burst of
# writes (a crowd joining) a read per notice would make smaller batches and more invocations.
MIN_READ_INTERVAL = 0.05


@dataclass(frozen=True)
class StreamMapping:
    function: str  # logical id
    table: str  # logical id of the table whose stream feeds it
    batch_size: int = 100
    batching_window: float = 0.0
    max_retries: int = -1  # -1: until the record expires (here: forever)
    starting_position: str = "LATEST"
    filters: tuple[dict, ...] = ()
    report_item_failures: bool = False


def stream_mappings(template: Any) -> list[StreamMapping]:
    """Every mapping of a table's stream to a function, as CloudFormation creates them: the template's
    EventSourceMapping resources and those the SAM transform makes of `Type: DynamoDB` events
    (FunctionName: !Ref <Function>, its alias or its !GetAtt Arn)."""
    mappings = []
    for logical_id, resource in template.deployed("AWS::Lambda::EventSourceMapping").items():
        props = resource.get("Properties", {})
        arn = props.get("EventSourceArn")
        table = _stream_table(arn)
        if table is None and isinstance(arn, str) and ":dynamodb:" in arn:
            raise ValueError(f"{logical_id}.EventSourceArn: the local stack needs !GetAtt <Table>.StreamArn")
        if table is None:
            continue  # not a DynamoDB stream (SQS, Kinesis, ...): not polled locally
        function = template.function_of(props.get("FunctionName"), f"{logical_id}.FunctionName")
        mappings.append(_mapping(template, function, table, props))
    return mappings


def _stream_table(arn: Any) -> str | None:
    """The table logical id of `!GetAtt <Table>.StreamArn`; None for anything else."""
    if not (isinstance(arn, dict) and "Fn::GetAtt" in arn):
        return None
    target = arn["Fn::GetAtt"]
    table, attribute = target.split(".", 1) if isinstance(target, str) else target
    return table if attribute == "StreamArn" else None


def _mapping(template: Any, function: str, table: str, props: dict) -> StreamMapping:
    filters = tuple(json.loads(f["Pattern"]) for f in (props.get("FilterCriteria") or {}).get("Filters", []))
    return StreamMapping(
        function=function, table=table,
        batch_size=int(template.resolve(props.get("BatchSize", 100))),
        batching_window=float(template.resolve(props.get("MaximumBatchingWindowInSeconds", 0))),
        max_retries=int(template.resolve(props.get("MaximumRetryAttempts", -1))),
        starting_position=str(template.resolve(props.get("StartingPosition", "LATEST"))),
        filters=filters,
        report_item_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
    )


def matches(pattern: Any, value: Any) -> bool:
    """Lambda event filtering, the subset templates use: nested keys, lists of allowed values,
    {"exists": bool} and {"prefix": str}."""
    if isinstance(pattern, dict):
        if not isinstance(value, dict):
            return False
        return all(matches(sub, value.get(key, _MISSING)) if not _is_exists(sub) else
                   (key in value) == sub[0]["exists"] for key, sub in pattern.items())
    if isinstance(pattern, list):
        for option in pattern:
            if isinstance(option, dict) and "prefix" in option:
                if isinstance(value, str) and value.startswith(option["prefix"]):
                    return True
            elif value is not _MISSING and option == value:
                return True
        return False
    return pattern == value


_MISSING = object()


def _is_exists(sub: Any) -> bool:
    return isinstance(sub, list) and len(sub) == 1 and isinstance(sub[0], dict) and "exists" in sub[0]


class StreamPoller:
    """One mapping: reads every shard of the table's stream and invokes the function."""

    def __init__(self, mapping: StreamMapping, stream_arn: str, streams_client: Any, invoker: Invoker) -> None:
        self.mapping = mapping
        self.stream_arn = stream_arn
        self._client = streams_client
        self._invoker = invoker
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()

    @property
    def table_name(self) -> str:
        """The table whose stream this reads (arn:...:table/NAME/stream/LABEL)."""
        return self.stream_arn.split(":table/", 1)[-1].split("/", 1)[0]

    def wake(self) -> None:
        """The table's stream got records: read now."""
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _iterators(self, known: dict[str, str | None]) -> None:
        """Where to read each shard: ("AFTER_SEQUENCE_NUMBER", last record seen) or
        ("AT_SEQUENCE_NUMBER", first record). Positions, not iterators, are kept: moto binds an
        iterator to a stream-shard object, and a cancelled TransactWriteItems replaces the table
        (and its shard) with a deep copy, which would leave an iterator reading an orphan forever."""
        description = await asyncio.to_thread(self._client.describe_stream, StreamArn=self.stream_arn)
        for shard in description["StreamDescription"]["Shards"]:
            shard_id = shard["ShardId"]
            if shard_id in known:
                continue
            first = shard["SequenceNumberRange"]["StartingSequenceNumber"]
            position: tuple = ("AT_SEQUENCE_NUMBER", first)
            if self.mapping.starting_position == "LATEST" and not known:
                iterator = (await asyncio.to_thread(self._client.get_shard_iterator, StreamArn=self.stream_arn,
                                                    ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"))["ShardIterator"]
                while iterator:  # skip what is already there
                    page = await asyncio.to_thread(self._client.get_records, ShardIterator=iterator, Limit=1000)
                    if not page.get("Records"):
                        break
                    position = ("AFTER_SEQUENCE_NUMBER", page["Records"][-1]["dynamodb"]["SequenceNumber"])
                    iterator = page.get("NextShardIterator")
            known[shard_id] = position

    async def _run(self) -> None:
        positions: dict[str, tuple] = {}
        pending: list[dict] = []
        window_started: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            try:
                self._wake.clear()  # before reading: a notice during the read is read next time
                if not positions:
                    await self._iterators(positions)
                for shard_id, (kind, number) in list(positions.items()):
                    iterator = (await asyncio.to_thread(
                        self._client.get_shard_iterator, StreamArn=self.stream_arn, ShardId=shard_id,
                        ShardIteratorType=kind, SequenceNumber=number))["ShardIterator"]
                    page = await asyncio.to_thread(self._client.get_records, ShardIterator=iterator, Limit=1000)
                    for record in page.get("Records", []):
                        positions[shard_id] = ("AFTER_SEQUENCE_NUMBER", record["dynamodb"]["SequenceNumber"])
                        record = {**record, "eventSourceARN": self.stream_arn}
                        record["dynamodb"] = {k: (v.timestamp() if hasattr(v, "timestamp") else v)
                                              for k, v in record.get("dynamodb", {}).items()}
                        if not self.mapping.filters or any(matches(f, record) for f in self.mapping.filters):
                            pending.append(record)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a moto hiccup must not stop the mapping
                log.warning("stream %s: %s", self.mapping.function, exc)
                await asyncio.sleep(1)
                continue
            read_at = loop.time()
            if pending and window_started is None:
                window_started = loop.time()
            full = len(pending) >= self.mapping.batch_size
            waited = window_started is not None and loop.time() - window_started >= self.mapping.batching_window
            if pending and (full or waited):
                batch, pending = pending[:self.mapping.batch_size], pending[self.mapping.batch_size:]
                window_started = loop.time() if pending else None
                await self._deliver(batch)
            else:
                try:
                    await asyncio.wait_for(self._wake.wait(), SAFETY_POLL if not pending else
                                           max(0.0, self.mapping.batching_window - (loop.time() - window_started)))
                    await asyncio.sleep(max(0.0, read_at + MIN_READ_INTERVAL - loop.time()))
                except TimeoutError:
                    pass

    async def _deliver(self, batch: list[dict]) -> None:
        await deliver(self._invoker, self.mapping.function, batch, max_retries=self.mapping.max_retries,
                      failed_from=self._failed_from, label=f"stream {self.mapping.function}")

    def _failed_from(self, batch: list[dict], result: Any) -> int | None:
        return failed_from(batch, result, self.mapping.report_item_failures,
                           lambda record: str(record["dynamodb"].get("SequenceNumber")))


# Lambda's handling of a batch, the same for every stream it reads (DynamoDB here, Kinesis in kinesis.py).


def failed_from(batch: list[dict], result: Any, report_item_failures: bool,
                sequence_of: Callable[[dict], str]) -> int | None:
    """The index of the earliest record the function reported failed (ReportBatchItemFailures); None
    when it reported none (or the mapping does not read reports)."""
    if not report_item_failures or not isinstance(result, dict):
        return None
    reported = {str(f.get("itemIdentifier")) for f in result.get("batchItemFailures") or [] if isinstance(f, dict)}
    indexes = [i for i, record in enumerate(batch) if sequence_of(record) in reported]
    return min(indexes) if indexes else None


async def deliver(invoker: Invoker, function: str, batch: list[dict], *, max_retries: int,
                  failed_from: Callable[[list[dict], Any], int | None], label: str,
                  fresh: Callable[[list[dict]], list[dict]] = lambda batch: batch) -> None:
    """Invokes `function` with the batch until it succeeds, as Lambda does: a reported failure retries the
    batch from the earliest failed record, an error retries it whole, with backoff, `max_retries` times at most
    (-1: until `fresh`, the records not yet too old to deliver, leaves none)."""
    attempts = 0
    batch = fresh(batch)
    while batch:
        try:
            result = await invoker.invoke(function, {"Records": batch})
            failed = failed_from(batch, result)
            if failed is None:
                return
            batch = batch[failed:]
            raise RuntimeError(f"{len(batch)} records from a failed one")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001
            attempts += 1
            if 0 <= max_retries < attempts:
                log.warning("%s: batch of %d dropped after %d attempts: %s", label, len(batch), attempts, exc)
                return
            await asyncio.sleep(min(2 ** attempts * 0.1, 5))
            batch = fresh(batch)
