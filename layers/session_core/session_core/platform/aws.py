"""AWS clients, created once per execution environment, and the one reading of their failures.

Endpoints come from the standard AWS_ENDPOINT_URL* variables, so the same code
talks to AWS, to the local stack's embedded endpoint and to SAM CLI containers.

Clients come from botocore's own session, not boto3: boto3.client() returns the same botocore client, but
importing boto3 loads s3transfer and its resource machinery, and its session adds a data path that every
model lookup lists: about 0.1x of a cold start, for nothing these functions use (docs/performance.md).
"""

from __future__ import annotations

from functools import cache

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .. import errors
from .observability import logger

# Fail fast and let the caller answer 503 rather than hold a request for the
# whole Lambda timeout; "standard" retries throttling with backoff. The pool
# holds a connection for each thread of the widest fan-out (the teardown
# worker's 25 posting threads); botocore's default of 10 would queue them.
MAX_POOL_CONNECTIONS = 32
CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=5,
                max_pool_connections=MAX_POOL_CONNECTIONS)


@cache
def session() -> botocore.session.Session:
    """One botocore session per execution environment: its clients share the loaded models and endpoints."""
    return botocore.session.get_session()


@cache
def client(service: str):
    return session().create_client(service, config=CONFIG)


class Declined(Exception):
    """AWS said no for a reason the caller expects (a failed condition, an execution that exists already).

    `item`: what DynamoDB returned with a failed condition (ReturnValuesOnConditionCheckFailure), if anything.
    """

    def __init__(self, code: str, item: dict | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.item = item


def call(service: str, operation: str, /, *, expected: tuple[str, ...] = (), **parameters) -> dict:
    """One request; an error whose code is in `expected` raises Declined, any other failure ServiceUnavailable."""
    try:
        return getattr(client(service), operation)(**parameters)
    except (ClientError, BotoCoreError) as exc:
        if isinstance(exc, ClientError) and error_code(exc) in expected:
            raise Declined(error_code(exc), exc.response.get("Item")) from None
        raise unavailable(exc) from None


def error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def unavailable(exc: Exception) -> errors.ServiceUnavailable:
    # Throttling and transient faults have already been retried by botocore;
    # anything else is still not the caller's fault, so it is a 503 either way.
    code = error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
    operation = getattr(exc, "operation_name", None)
    logger.error("AWS request failed", extra={"awsErrorCode": code, "awsOperation": operation})
    return errors.ServiceUnavailable()
