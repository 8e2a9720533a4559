"""The one translation of AWS failures (platform/aws.py) and the one reading of a refused write (data/sessions.py)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from session_core import errors
from session_core.data import sessions, table
from session_core.platform import aws
from session_core.platform.settings import settings

NOW = 1_800_000_000


class FailingClient:
    def __init__(self, failure: Exception) -> None:
        self.failure = failure

    def put_item(self, **request):
        raise self.failure


def client_error(code: str, item: dict | None = None) -> ClientError:
    response = {"Error": {"Code": code, "Message": "no"}}
    if item is not None:
        response["Item"] = item
    return ClientError(response, "PutItem")


@pytest.fixture
def failing(monkeypatch):
    """failing(exception): every AWS request raises it."""
    monkeypatch.setenv("TABLE_NAME", "sessions")
    settings.cache_clear()

    def fail_with(failure: Exception) -> None:
        monkeypatch.setattr(aws, "client", lambda service: FailingClient(failure))
    yield fail_with
    settings.cache_clear()


def test_an_expected_refusal_is_declined_with_what_aws_returned(failing):
    failing(client_error("ExecutionAlreadyExists", {"pk": {"S": "x"}}))
    with pytest.raises(aws.Declined) as declined:
        aws.call("dynamodb", "put_item", expected=("ExecutionAlreadyExists",))
    assert (declined.value.code, declined.value.item) == ("ExecutionAlreadyExists", {"pk": {"S": "x"}})


@pytest.mark.parametrize("failure", [client_error("ProvisionedThroughputExceededException"),
                                     client_error("AccessDeniedException"),
                                     EndpointConnectionError(endpoint_url="https://dynamodb.eu-west-1.amazonaws.com")])
def test_any_other_failure_is_service_unavailable_and_logged_with_its_aws_code(failing, failure, caplog):
    failing(failure)
    with pytest.raises(errors.ServiceUnavailable):
        aws.call("dynamodb", "put_item", expected=("ConditionalCheckFailedException",))
    (record,) = [r for r in caplog.records if r.getMessage() == "AWS request failed"]
    assert record.awsErrorCode in ("ProvisionedThroughputExceededException", "AccessDeniedException",
                                   "EndpointConnectionError")


def test_a_failed_condition_on_the_table_carries_the_item(failing):
    failing(client_error("ConditionalCheckFailedException", {"status": {"S": "ended"}}))
    with pytest.raises(table.ConditionFailed) as failed:
        table.request("put_item", Item={})
    assert failed.value.item == {"status": {"S": "ended"}}


def session_item(*, expires_at: int = NOW + 60, speaker: str = "alice", status: str = "active") -> dict:
    return {"expiresAt": {"N": str(expires_at)}, "speakerId": {"S": speaker}, "status": {"S": status}}


@pytest.mark.parametrize(("item", "refusal"), [
    (None, errors.SessionNotFound),
    (session_item(expires_at=NOW), errors.SessionNotFound),  # TTL deletes lazily
    (session_item(speaker="bob"), errors.Forbidden),
    (session_item(status="ended"), errors.SessionEnded),
])
def test_why_a_write_on_a_live_owned_session_was_refused(item, refusal):
    assert isinstance(sessions.why_refused(item, NOW, caller_id="alice"), refusal)


def test_an_ended_session_comes_back_with_the_refusal():
    ended = session_item(status="ended")
    assert sessions.why_refused(ended, NOW, caller_id="alice").item is ended


def test_a_speakers_join_to_someone_elses_session_is_not_session_owner():
    assert isinstance(sessions.why_refused(session_item(speaker="bob"), NOW, caller_id="alice",
                                        not_owner=errors.NotSessionOwner), errors.NotSessionOwner)


def test_without_a_caller_ownership_is_not_asked_and_a_live_session_leaves_the_writes_own_condition():
    assert sessions.why_refused(session_item(speaker="bob"), NOW) is None
    assert sessions.why_refused(session_item(), NOW, caller_id="alice") is None
