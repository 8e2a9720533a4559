"""AWS clients, created once per execution environment.

Endpoints come from the standard AWS_ENDPOINT_URL* variables, so the same code
talks to AWS, to the local stack's embedded endpoint and to SAM CLI containers.
"""

from __future__ import annotations

from functools import cache

import boto3
from botocore.config import Config

# Fail fast and let the caller answer 503 rather than hold a request for the
# whole Lambda timeout; "standard" retries throttling with backoff.
CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=5)


@cache
def client(service: str):
    return boto3.client(service, config=CONFIG)
