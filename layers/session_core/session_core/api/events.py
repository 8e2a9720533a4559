"""Entry points for the events that are not API requests: the teardown workflow's steps and the table stream."""

from __future__ import annotations

from collections.abc import Callable

from ..platform.observability import logger, observed


def workflow_step(step: str, work: Callable[[dict], dict]) -> Callable[[dict, object], dict]:
    """The Lambda entry point of a teardown workflow step: `work(event)` is the step's result, which is
    also logged as the invocation's one summary line."""

    @observed("executionName")
    def lambda_handler(event: dict, context: object) -> dict:
        # Correlation ID: the workflow's execution name (<sessionId>-<createdAt>).
        logger.append_keys(sessionId=event.get("sessionId"))
        result = work(event)
        logger.info("request", extra={"step": step, **result})
        return result

    return lambda_handler


def stream_consumer(work: Callable[[list[dict]], tuple[dict, list[str]]]) -> Callable[[dict, object], dict]:
    """The Lambda entry point of a table stream consumer: `work(records)` returns the batch's summary, logged
    as the invocation's one summary line, and the sequence numbers of the records that failed, answered as
    batchItemFailures (the event source mapping's ReportBatchItemFailures: it retries from the earliest).
    Raising fails the whole batch."""

    @observed()
    def lambda_handler(event: dict, context: object) -> dict:
        records = event.get("Records", [])
        summary, failed = work(records)
        logger.info("request", extra={"records": len(records), **summary})
        return {"batchItemFailures": [{"itemIdentifier": sequence} for sequence in failed]}

    return lambda_handler


def welcome_step(shape: Callable[[dict, object], list[dict]]) -> Callable[[dict, object], None]:
    """The Lambda entry point of the welcome function: {"connectionId", "message"?, "state"?} from $connect,
    delivered once the connection is established (usecases/welcome.py); `shape(state, session)` makes the
    state's messages in the connection's dialect."""
    from ..usecases import welcome

    @observed()
    def lambda_handler(event: dict, context: object) -> None:
        logger.append_keys(connectionId=event.get("connectionId"))
        state = event.get("state")
        welcome.deliver(event["connectionId"], event.get("message"),
                        (lambda: welcome.current_state(state, shape)) if state else None,
                        gone=welcome.left(state, event["connectionId"]))

    return lambda_handler


def scheduled(work: Callable[[], dict]) -> Callable[[dict, object], None]:
    """The Lambda entry point of a scheduled function (an EventBridge rule): `work()` returns the run's
    summary, logged as the invocation's one summary line."""

    @observed()
    def lambda_handler(event: dict, context: object) -> None:
        logger.info("request", extra=work())

    return lambda_handler
