"""AWS clients, created once per execution environment, and the one reading of their failures.

Endpoints come from the standard AWS_ENDPOINT_URL* variables, so the same code
talks to AWS, to the local stack's embedded endpoint and to SAM CLI containers.

Clients come from botocore's own session, not boto3: boto3.client() returns the same botocore client, but
importing boto3 loads s3transfer and its resource machinery, and its session adds a data path that every
model lookup lists: about 0.1x of a cold start, for nothing these functions use (docs/performance.md).
The session's loader looks for a service in that service's folder only (`_Loader`).
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from functools import cache

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, DataNotFoundError
from botocore.loaders import Loader

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
    made = botocore.session.get_session()
    searched = made.get_component("data_loader").search_paths  # botocore's own, AWS_DATA_PATH's folders first
    made.register_component("data_loader", _Loader(extra_search_paths=searched, include_default_search_paths=False))
    return made


class _Loader(Loader):
    """botocore's model loader, except in how it tells whether it knows a service.

    Before loading a model, botocore checks the name against every service it has: it lists all ≈ 450 service
    folders and their versions, once for the models and once for the endpoint rules, ≈ 20 ms of CPU at every
    cold start (≈ 0.06x, docs/performance.md) for names written in this code. A service is known for a kind of
    file exactly when one of its API versions holds that file, which is what `list_api_versions` reads in the
    one service's folder; the whole list is still made when something asks for it (an unknown name's error).
    """

    def list_available_services(self, type_name: str) -> AbstractSet[str]:
        return _KnownServices(self, type_name)


class _KnownServices(AbstractSet):
    def __init__(self, loader: _Loader, type_name: str) -> None:
        self._loader, self._type_name = loader, type_name

    def __contains__(self, name: object) -> bool:
        try:
            return isinstance(name, str) and bool(self._loader.list_api_versions(name, self._type_name))
        except DataNotFoundError:
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def _all(self) -> list[str]:
        return Loader.list_available_services(self._loader, self._type_name)


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
