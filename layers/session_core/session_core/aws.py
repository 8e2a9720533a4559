"""AWS clients, created once per execution environment.

Endpoints come from the standard AWS_ENDPOINT_URL* variables, so the same code
talks to AWS, to the local stack's embedded endpoint and to SAM CLI containers.
"""

from __future__ import annotations

from functools import cache

import boto3
from botocore.config import Config

# Fail fast and let the caller answer 503 rather than hold a request for the
# whole Lambda timeout; "standard" retries throttling with backoff. The pool
# holds a connection for each thread of the widest fan-out (the teardown
# worker's 25 posting threads); botocore's default of 10 would queue them.
MAX_POOL_CONNECTIONS = 32
CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=5,
                max_pool_connections=MAX_POOL_CONNECTIONS)


@cache
def client(service: str):
    return boto3.client(service, config=CONFIG)
