"""The connection context as API Gateway hands it back to every route of a connection."""

import pytest
from session_core.domain import ConnectionContext


def test_the_authorizers_context_round_trips():
    context = ConnectionContext(sessionId="golden-eagle-427", role="listener", targetLanguage="es")
    as_sent = {"principalId": "anonymous", **context.as_authorizer_context()}  # API Gateway adds principalId
    assert ConnectionContext.from_authorizer(as_sent) == context
    assert context.as_authorizer_context() == {"sessionId": "golden-eagle-427", "role": "listener", "userId": "",
                                               "targetLanguage": "es", "legacy": False, "dialect": "native"}


@pytest.mark.parametrize(("sent", "legacy"), [(True, True), (False, False), ("true", True), ("false", False)])
def test_legacy_may_arrive_as_a_boolean_or_its_string(sent, legacy):
    assert ConnectionContext.from_authorizer({"role": "speaker", "legacy": sent}).legacy is legacy


@pytest.mark.parametrize("context", [
    {},                                                   # no authorizer ran
    {"role": "admin"},                                    # not a role
    {"role": "listener", "legacy": "yes"},                # not a boolean
    {"role": "listener", "legacy": 1},
    {"role": "speaker", "sessionId": 42},                 # not text
    {"role": "speaker", "userId": None},
    {"role": "speaker", "dialect": "klingon"},           # not a dialect
])
def test_anything_else_is_not_an_authorizer_context(context):
    with pytest.raises(ValueError):
        ConnectionContext.from_authorizer(context)
