"""Which functions the local stack feeds from a Kinesis stream (or an enhanced fan-out consumer of one), read
from the template's AWS::Lambda::EventSourceMapping resources; the role check Lambda makes when it creates one;
batches retried from the earliest failed record, stale ones dropped."""

import asyncio
import time
from pathlib import Path
from textwrap import dedent, indent

from local_stack.iam import Role, Statement
from local_stack.kinesis import KinesisMapping, KinesisPoller, kinesis_mappings, refusal
from local_stack.template import Template, load_yaml

ROOT = Path(__file__).resolve().parents[2]
HEAD = """
Resources:
  Stream:
    Type: AWS::Kinesis::Stream
    Properties: {ShardCount: 1}
  Consumer:
    Type: AWS::Kinesis::StreamConsumer
    Properties: {StreamARN: !GetAtt Stream.Arn, ConsumerName: c}
  Reader:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: src, Handler: app.handler, Runtime: python3.13}
"""


def mappings(resources: str) -> list[KinesisMapping]:
    return kinesis_mappings(Template(load_yaml(dedent(HEAD) + indent(dedent(resources), "  ")), Path("/project")))


def test_the_project_templates_audio_functions_read_their_streams_through_their_consumers():
    found = {m.name: m for m in kinesis_mappings(Template.load(ROOT / "template.yaml"))}
    assert {(m.function, m.stream, m.consumer) for m in found.values()} == {
        ("AudioFanoutFunction", "AudioStream", "AudioFanoutConsumer"),
        ("AudioFanoutFunction", "TranslatedAudioStream", "TranslatedAudioFanoutConsumer"),
        ("AudioSliceFunction", "AudioSliceStream", "AudioSliceConsumer"),
        # Referenced chunks: the streams directly, about 2 s of records a batch.
        ("ReferencedAudioFunction", "AudioStream", None), ("ReferencedAudioFunction", "TranslatedAudioStream", None)}
    for mapping in found.values():
        inline = mapping.function in ("AudioFanoutFunction", "AudioSliceFunction")
        assert (mapping.batch_size, mapping.batching_window, mapping.parallelization) == (
            (100, 0.0, 10) if inline else (1000, 2.0, 10))
        assert (mapping.max_retries, mapping.max_record_age, mapping.report_item_failures) == (2, 60.0, True)


def test_a_mapping_reads_a_stream_directly_or_through_a_consumer_and_ignores_other_sources():
    direct, through = mappings("""
      Direct:
        Type: AWS::Lambda::EventSourceMapping
        Properties: {FunctionName: !Ref Reader, EventSourceArn: !GetAtt Stream.Arn, StartingPosition: TRIM_HORIZON,
                     BatchSize: 7, MaximumBatchingWindowInSeconds: 2}
      Through:
        Type: AWS::Lambda::EventSourceMapping
        Properties: {FunctionName: !Ref Reader, EventSourceArn: !GetAtt Consumer.ConsumerARN}
      Table:
        Type: AWS::Lambda::EventSourceMapping
        Properties: {FunctionName: !Ref Reader, EventSourceArn: !GetAtt Other.StreamArn}
    """)
    assert direct == KinesisMapping(name="Direct", function="Reader", stream="Stream", batch_size=7,
                                    batching_window=2.0, starting_position="TRIM_HORIZON")
    assert (through.stream, through.consumer, through.starting_position) == ("Stream", "Consumer", "LATEST")


STREAM = "arn:aws:kinesis:eu-west-1:123456789012:stream/s"
CONSUMER = f"{STREAM}/consumer/c:1"
READS = ["kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kinesis:GetRecords", "kinesis:GetShardIterator",
         "kinesis:ListShards"]


def role(*statements: dict) -> Role:
    return Role("Reader", "local-Reader", "local-ReaderRole", tuple(Statement.parse(s, "test") for s in statements))


def test_a_consumer_mapping_needs_the_consumer_and_the_stream_reads_on_those_resources():
    allowed = role({"Effect": "Allow", "Action": READS, "Resource": STREAM},
                   {"Effect": "Allow", "Action": ["kinesis:SubscribeToShard", "kinesis:DescribeStreamConsumer"],
                    "Resource": CONSUMER})
    assert refusal(allowed, STREAM, CONSUMER) is None
    no_consumer = role({"Effect": "Allow", "Action": READS, "Resource": STREAM})
    assert "kinesis:SubscribeToShard" in refusal(no_consumer, STREAM, CONSUMER)
    other_stream = role({"Effect": "Allow", "Action": READS, "Resource": f"{STREAM}-other"})
    assert "kinesis:DescribeStream" in refusal(other_stream, STREAM, None)


class Recorder:
    """An invoker that records batches and answers the failures it is given, once each."""

    def __init__(self, failures: list[str] | None = None) -> None:
        self.batches: list[list[str]] = []
        self.failures = list(failures or [])

    async def invoke(self, function, event, request_id=None):
        self.batches.append([r["kinesis"]["sequenceNumber"] for r in event["Records"]])
        failed = self.failures.pop(0) if self.failures else None
        return {"batchItemFailures": [{"itemIdentifier": failed}] if failed else []}


def record(sequence: str, key: str = "k", age: float = 0.0) -> dict:
    return {"kinesis": {"sequenceNumber": sequence, "partitionKey": key,
                        "approximateArrivalTimestamp": time.time() - age}}


def test_a_reported_failure_retries_the_batch_from_that_record():
    recorder = Recorder(failures=["2"])
    poller = KinesisPoller(KinesisMapping(name="M", function="Reader", stream="Stream", report_item_failures=True),
                           STREAM, None, recorder, "eu-west-1")
    asyncio.run(poller._deliver([record("1"), record("2"), record("3")]))
    assert recorder.batches == [["1", "2", "3"], ["2", "3"]]


def test_records_older_than_the_maximum_record_age_are_discarded_before_and_between_attempts():
    recorder = Recorder(failures=["2"])
    poller = KinesisPoller(KinesisMapping(name="M", function="Reader", stream="Stream", report_item_failures=True,
                                          max_record_age=60), STREAM, None, recorder, "eu-west-1")
    asyncio.run(poller._deliver([record("1", age=61), record("2", age=59.95), record("3")]))
    # "1" never goes; "2" fails, and is over a minute old by its retry: only "3" is retried.
    assert recorder.batches == [["2", "3"], ["3"]]


class FakeShards:
    """A stream of four shards as the poller's kinesis client sees it; records which shards it read."""

    def __init__(self) -> None:
        self.records: dict[str, list[dict]] = {f"shardId-{i:012d}": [] for i in range(4)}
        self.reads: list[str] = []

    def list_shards(self, StreamName):  # botocore's parameter names
        return {"Shards": [{"ShardId": shard} for shard in self.records]}

    def get_shard_iterator(self, StreamName, ShardId, ShardIteratorType):
        return {"ShardIterator": ShardId}

    def get_records(self, ShardIterator, Limit):
        self.reads.append(ShardIterator)
        records, self.records[ShardIterator] = self.records[ShardIterator], []
        return {"Records": records, "NextShardIterator": ShardIterator}


def test_a_put_wakes_a_read_of_its_shards_and_the_safety_poll_reads_every_shard(monkeypatch):
    monkeypatch.setattr("local_stack.kinesis.SAFETY_POLL", 0.5)
    shards, recorder = FakeShards(), Recorder()

    async def scenario():
        poller = KinesisPoller(KinesisMapping(name="M", function="Reader", stream="Stream"), STREAM, shards,
                               recorder, "eu-west-1")
        await poller.start()
        try:
            while len(shards.reads) < 4:  # the first round reads every shard
                await asyncio.sleep(0.01)
            first = list(shards.reads)
            shards.records["shardId-000000000002"].append(
                {"SequenceNumber": "7", "PartitionKey": "k", "Data": b"x"})
            poller.wake({"shardId-000000000002"})
            while not recorder.batches:
                await asyncio.sleep(0.01)
            woken = shards.reads[len(first):]
            poller.wake()  # shards not known: every one
            await asyncio.sleep(0.1)
            any_shard = shards.reads[len(first) + len(woken):]
            await asyncio.sleep(0.6)  # the safety poll
            polled = shards.reads[len(first) + len(woken) + len(any_shard):]
        finally:
            await poller.stop()
        return first, woken, any_shard, polled

    first, woken, any_shard, polled = asyncio.run(scenario())
    every = sorted(shards.records)
    assert sorted(first) == every
    assert woken == ["shardId-000000000002"]
    assert sorted(any_shard) == every
    assert sorted(set(polled)) == every
    assert recorder.batches == [["7"]]
