"""Which functions the local stack feeds from a table's stream, read from the template: explicit
AWS::Lambda::EventSourceMapping resources (as template.yaml declares the status broadcast) and SAM
`Type: DynamoDB` events."""

from pathlib import Path
from textwrap import dedent, indent

import pytest

from local_stack.streams import StreamMapping, stream_mappings
from local_stack.template import Template, load_yaml

ROOT = Path(__file__).resolve().parents[2]

HEAD = """
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      StreamSpecification: {StreamViewType: NEW_AND_OLD_IMAGES}
  Queue:
    Type: AWS::SQS::Queue
  Consumer:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: src, Handler: app.handler, Runtime: python3.13}
"""


def mappings(resources: str) -> list[StreamMapping]:
    return stream_mappings(Template(load_yaml(dedent(HEAD) + indent(dedent(resources), "  ")), Path("/project")))


def test_the_project_templates_status_broadcast_is_read_from_its_event_source_mapping():
    (mapping,) = stream_mappings(Template.load(ROOT / "template.yaml"))
    assert mapping.function == "StatusBroadcastFunction"
    assert mapping.table == "SessionsTable"
    # No batching window: a pause is not held up to 1 s (docs/architecture.md, "Status broadcast").
    assert (mapping.batch_size, mapping.batching_window, mapping.max_retries) == (100, 0.0, 3)
    assert mapping.starting_position == "LATEST"
    assert mapping.filters == ({"eventName": ["MODIFY"], "dynamodb": {"Keys": {
        "pk": {"S": [{"prefix": "SESSION#"}]}, "sk": {"S": ["META"]}}}},)


@pytest.mark.parametrize("function", ["!Ref Consumer", "!GetAtt Consumer.Arn"])
def test_an_event_source_mapping_names_its_function_by_ref_or_arn(function):
    (mapping,) = mappings(f"""
      Mapping:
        Type: AWS::Lambda::EventSourceMapping
        Properties:
          FunctionName: {function}
          EventSourceArn: !GetAtt Table.StreamArn
          StartingPosition: TRIM_HORIZON
          BatchSize: 7
          MaximumBatchingWindowInSeconds: 2
    """)
    assert mapping == StreamMapping(function="Consumer", table="Table", batch_size=7, batching_window=2.0,
                                    max_retries=-1, starting_position="TRIM_HORIZON")


def test_a_mapping_of_something_else_than_a_table_stream_is_not_polled():
    assert mappings("""
      Mapping:
        Type: AWS::Lambda::EventSourceMapping
        Properties:
          FunctionName: !Ref Consumer
          EventSourceArn: !GetAtt Queue.Arn
    """) == []


def test_a_mapping_to_a_function_outside_the_template_is_refused():
    with pytest.raises(ValueError, match="Mapping.FunctionName"):
        mappings("""
          Mapping:
            Type: AWS::Lambda::EventSourceMapping
            Properties:
              FunctionName: some-other-function
              EventSourceArn: !GetAtt Table.StreamArn
        """)


def test_sam_dynamodb_events_are_still_read():
    template = Template(load_yaml(dedent(HEAD) + indent(dedent("""
      Other:
        Type: AWS::Serverless::Function
        Properties:
          CodeUri: src
          Handler: app.handler
          Runtime: python3.13
          Events:
            Changes:
              Type: DynamoDB
              Properties: {Stream: !GetAtt Table.StreamArn, StartingPosition: LATEST, MaximumRetryAttempts: 2}
    """), "  ")), Path("/project"))
    (mapping,) = stream_mappings(template)
    assert (mapping.function, mapping.table, mapping.max_retries) == ("Other", "Table", 2)


def test_reported_item_failures_retry_the_batch_from_the_earliest_failed_record():
    from local_stack.streams import StreamPoller

    batch = [{"dynamodb": {"SequenceNumber": str(n)}} for n in (100, 200, 300)]
    reporting = StreamPoller(StreamMapping(function="F", table="T", report_item_failures=True), "arn", None, None)
    answer = {"batchItemFailures": [{"itemIdentifier": "300"}, {"itemIdentifier": "200"}]}
    assert reporting._failed_from(batch, answer) == 1
    assert reporting._failed_from(batch, {"batchItemFailures": []}) is None
    ignoring = StreamPoller(StreamMapping(function="F", table="T"), "arn", None, None)
    assert ignoring._failed_from(batch, answer) is None
