import json

import boto3
import pytest
from moto.server import ThreadedMotoServer

from tests.support.lambdas import Context, load_handler


@pytest.fixture(scope="session")
def aws_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def table(aws_endpoint):
    import os
    os.environ["AWS_ENDPOINT_URL"] = aws_endpoint
    os.environ["TABLE_NAME"] = "sessions-test"
    ddb = boto3.client("dynamodb", endpoint_url=aws_endpoint)
    ddb.create_table(
        TableName="sessions-test",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return "sessions-test"


class Invoker:
    def __init__(self):
        self._handlers = {}

    def __call__(self, folder: str, event: dict) -> tuple[int, dict, dict | None]:
        if folder not in self._handlers:
            self._handlers[folder] = load_handler(folder)
        result = self._handlers[folder](event, Context(function_name=folder))
        body = json.loads(result["body"]) if result.get("body") else None
        return result["statusCode"], {k.lower(): v for k, v in result.get("headers", {}).items()}, body


@pytest.fixture(scope="session")
def invoke(table):
    return Invoker()
