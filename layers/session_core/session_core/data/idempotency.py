"""POST /sessions with an Idempotency-Key: a retried or replayed create
returns the session the first request made instead of making a second one.

Records live in the sessions table (Powertools' layout: pk = "idempotency#<function
name>", sk = "create_session#<hash of the key>") for an hour, which bounds how late a client may replay. The key
is scoped to the caller, and reusing it with a different body is refused.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Callable

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)

from .. import errors
from ..platform.settings import settings
from .table import dynamodb_client

KEY_PATTERN = re.compile(r"[A-Za-z0-9._:-]{8,128}")
REPLAY_WINDOW_SECONDS = 3600


def checked_key(value: str) -> str:
    if not KEY_PATTERN.fullmatch(value):
        raise errors.ValidationError("Idempotency-Key must be 8 to 128 characters of letters, digits and . _ : -")
    return value


@cache
def _config() -> IdempotencyConfig:
    return IdempotencyConfig(
        event_key_jmespath="[speakerId, idempotencyKey]",
        payload_validation_jmespath="request",
        expires_after_seconds=REPLAY_WINDOW_SECONDS,
        raise_on_no_idempotency_key=True,
    )


@cache
def _persistence() -> DynamoDBPersistenceLayer:
    return DynamoDBPersistenceLayer(
        table_name=settings().table_name,
        key_attr="pk",
        sort_key_attr="sk",
        expiry_attr="expiresAt",  # the table's TTL attribute removes old records
        boto3_client=dynamodb_client(),
    )


def once(work: Callable[[], dict], speaker_id: str, key: str, request: dict, lambda_context: object) -> dict:
    """Runs `work` once per (speaker, key); later calls return its first result."""
    _config().register_lambda_context(lambda_context)

    @idempotent_function(data_keyword_argument="identity", persistence_store=_persistence(), config=_config(),
                         key_prefix="create_session")
    def run(identity: dict) -> dict:
        return work()

    try:
        return run(identity={"speakerId": speaker_id, "idempotencyKey": checked_key(key), "request": request})
    except IdempotencyValidationError:
        raise errors.IdempotencyKeyReused() from None
    except IdempotencyAlreadyInProgressError:
        raise errors.RequestInProgress() from None
    except IdempotencyPersistenceLayerError:
        raise errors.ServiceUnavailable() from None  # DynamoDB failing under the idempotency record
