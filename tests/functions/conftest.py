import io
import json

import boto3
import pytest
from moto.server import ThreadedMotoServer

from local_stack.moto_server import make_dynamodb_thread_safe
from tests.support.emf import Emf
from tests.support.lambdas import Context, load_handler, new_execution_environment
from tests.support.management_api import FakeManagementApi

TABLE = "sessions-test"
STREAM = "audio-test"
TRANSLATED_STREAM_ARN = "arn:aws:kinesis:eu-west-1:123456789012:stream/translated-audio-test"
CHUNK_BUCKET = "chunks-test"


@pytest.fixture
def emf(capsys):
    """The EMF records the handlers print from now on."""
    recorder = Emf(capsys)
    recorder.clear()
    return recorder


@pytest.fixture(scope="package")
def aws_endpoint():
    # As the local stack runs moto: its DynamoDB backend is not thread-safe, so concurrent conditional writes
    # (test_concurrent_creates_never_pass_the_cap) could both pass a condition DynamoDB applies atomically.
    make_dynamodb_thread_safe()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="package")
def management_api():
    api = FakeManagementApi()
    yield api
    api.stop()


@pytest.fixture(scope="package")
def cognito(aws_endpoint):
    idp = boto3.client("cognito-idp", endpoint_url=aws_endpoint)
    pool = idp.create_user_pool(PoolName="test")["UserPool"]["Id"]
    client_id = idp.create_user_pool_client(
        UserPoolId=pool, ClientName="test",
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"])["UserPoolClient"]["ClientId"]
    tokens = {}
    for user in ("alice", "bob"):
        idp.admin_create_user(UserPoolId=pool, Username=user, TemporaryPassword="Temporary-Passw0rd")
        idp.admin_set_user_password(UserPoolId=pool, Username=user, Password=f"{user}-Passw0rd!", Permanent=True)
        result = idp.initiate_auth(ClientId=client_id, AuthFlow="USER_PASSWORD_AUTH",
                                   AuthParameters={"USERNAME": user, "PASSWORD": f"{user}-Passw0rd!"})
        tokens[user] = result["AuthenticationResult"]
    return {"pool": pool, "client": client_id, "tokens": tokens}


@pytest.fixture(scope="package")
def table(aws_endpoint, management_api, cognito):
    """The functions' environment, as template.yaml gives it, over moto: set for these tests only.

    The layer keeps its settings and AWS clients per execution environment (per process here), so whatever
    an earlier test built under another environment (a client aimed at AWS itself, settings without the
    table) is forgotten when this environment starts, and what these tests built is forgotten when it ends.
    """
    with pytest.MonkeyPatch.context() as environment:
        for name, value in {
            "AWS_ENDPOINT_URL": aws_endpoint,
            "TABLE_NAME": TABLE,
            "AUDIO_STREAM_NAME": STREAM,
            "TRANSLATED_AUDIO_STREAM_ARN": TRANSLATED_STREAM_ARN,
            "CHUNK_BUCKET_NAME": CHUNK_BUCKET,
            "WEBSOCKET_MANAGEMENT_URL": management_api.url,
            "MAX_LISTENERS_PER_SESSION": "3",
            # Many tests create sessions as one user; the cap has its own tests (test_private_sessions.py).
            "MAX_LIVE_SESSIONS_PER_USER": "1000",
            "MAX_AUDIO_BYTES": "4096",
            # No such function here: a native connect's welcome cannot be queued, which it survives
            # (test_ws_functions.py); what the welcome delivers runs in the end-to-end tests.
            "WELCOME_FUNCTION_NAME": "ws-welcome-test",
            "JWT_ISSUER": f"https://cognito-idp.eu-west-1.amazonaws.com/{cognito['pool']}",
            "JWT_AUDIENCE": cognito["client"],
            "JWKS_URL": f"{aws_endpoint}/{cognito['pool']}/.well-known/jwks.json",
        }.items():
            environment.setenv(name, value)
        ddb = boto3.client("dynamodb", endpoint_url=aws_endpoint)
        ddb.create_table(
            TableName=TABLE,
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"},
                                  {"AttributeName": "listening", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            GlobalSecondaryIndexes=[{"IndexName": "ListenersByLanguage",
                                     "KeySchema": [{"AttributeName": "listening", "KeyType": "HASH"}],
                                     "Projection": {"ProjectionType": "INCLUDE",
                                                    "NonKeyAttributes": ["connectionId", "role", "connectedAt", "dialect"]}}],
            BillingMode="PAY_PER_REQUEST",
        )
        boto3.client("s3", endpoint_url=aws_endpoint).create_bucket(
            Bucket=CHUNK_BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        kinesis = boto3.client("kinesis", endpoint_url=aws_endpoint)
        kinesis.create_stream(StreamName=STREAM, ShardCount=1)
        # Records the teardown starts; the workflow itself runs in the end-to-end tests.
        sfn = boto3.client("stepfunctions", endpoint_url=aws_endpoint)
        machine = sfn.create_state_machine(
            name="teardown-test", roleArn="arn:aws:iam::123456789012:role/teardown",
            definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}))
        environment.setenv("TEARDOWN_STATE_MACHINE_ARN", machine["stateMachineArn"])
        new_execution_environment()
        yield TABLE
    new_execution_environment()


class Invoker:
    def __init__(self):
        self._handlers = {}

    def raw(self, folder: str, event: dict):
        if folder not in self._handlers:
            self._handlers[folder] = load_handler(folder)
        return self._handlers[folder](event, Context(function_name=folder))

    def __call__(self, folder: str, event: dict) -> tuple[int, dict, dict | None]:
        result = self.raw(folder, event)
        body = json.loads(result["body"]) if result.get("body") else None
        return result["statusCode"], {k.lower(): v for k, v in result.get("headers", {}).items()}, body


@pytest.fixture(scope="package")
def invoke(table):
    return Invoker()


@pytest.fixture
def log_lines():
    """The JSON log lines the handlers wrote since the last call (or since the test began)."""
    from session_core.api.dialects import renamed as legacy
    from session_core.platform.observability import logger

    legacy._logged.clear()  # ignored fields are logged once per execution environment
    buffer = io.StringIO()
    previous = logger.registered_handler.setStream(buffer)

    def read() -> list[dict]:
        lines = [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]
        buffer.seek(0)
        buffer.truncate()
        return lines

    yield read
    logger.registered_handler.setStream(previous)


@pytest.fixture
def setenv(monkeypatch):
    """Changes a function setting for one test (settings are cached per execution environment)."""
    from session_core.platform import settings as settings_module

    def set_(name, value):
        monkeypatch.setenv(name, value)
        settings_module.settings.cache_clear()
    return set_
