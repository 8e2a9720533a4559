"""A new execution environment (tests/support/lambdas.py) reads the environment variables afresh, as a cold start
does: the tests rely on it to keep the settings and clients one test builds away from the next."""

from session_core.data import idempotency
from session_core.platform import auth, aws, management, settings

from tests.support.lambdas import new_execution_environment

AIMS = {"first": "http://127.0.0.1:4001", "second": "http://127.0.0.1:4002"}


def built_under(monkeypatch, aim: str) -> dict:
    monkeypatch.setenv("AWS_ENDPOINT_URL", AIMS[aim])
    monkeypatch.setenv("TABLE_NAME", f"sessions-{aim}")
    monkeypatch.setenv("WEBSOCKET_MANAGEMENT_URL", f"{AIMS[aim]}/management")
    monkeypatch.setenv("JWT_ISSUER", f"{AIMS[aim]}/pool")
    monkeypatch.delenv("JWKS_URL", raising=False)  # the issuer's own
    return {
        "table": settings.settings().table_name,
        "dynamodb": aws.client("dynamodb").meta.endpoint_url,
        "management": management._client().meta.endpoint_url,
        "jwks": auth.configured_verifier().jwks_url,
        "idempotency": idempotency._persistence().table_name,
    }


def test_what_was_built_under_one_environment_is_rebuilt_under_the_next(monkeypatch):
    first = built_under(monkeypatch, "first")
    assert built_under(monkeypatch, "second") == first  # read once per execution environment
    new_execution_environment()
    assert built_under(monkeypatch, "second") == {
        "table": "sessions-second",
        "dynamodb": AIMS["second"],
        "management": f"{AIMS['second']}/management",
        "jwks": f"{AIMS['second']}/pool/.well-known/jwks.json",
        "idempotency": "sessions-second",
    }
