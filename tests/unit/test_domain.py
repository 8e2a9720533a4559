"""The connection context as API Gateway hands it back to every route of a connection."""

import ast
from pathlib import Path

import pytest
from session_core import domain
from session_core.domain import ConnectionContext


def test_the_authorizers_context_round_trips():
    context = ConnectionContext(sessionId="golden-eagle-427", role="listener", targetLanguage="es",
                                delivery="referenced")
    as_sent = {"principalId": "anonymous", **context.as_authorizer_context()}  # API Gateway adds principalId
    assert ConnectionContext.from_authorizer(as_sent) == context
    assert context.as_authorizer_context() == {"sessionId": "golden-eagle-427", "role": "listener", "userId": "",
                                               "targetLanguage": "es", "legacy": False, "dialect": "native",
                                               "delivery": "referenced"}


@pytest.mark.parametrize(("sent", "legacy"), [(True, True), (False, False), ("true", True), ("false", False)])
def test_legacy_may_arrive_as_a_boolean_or_its_string(sent, legacy):
    assert ConnectionContext.from_authorizer({"role": "speaker", "legacy": sent}).legacy is legacy


@pytest.mark.parametrize("context", [
    {},                                                   # no authorizer ran
    {"role": "admin"},                                    # not a role
    {"role": "listener", "legacy": "yes"},                # not a boolean
    {"role": "listener", "legacy": 1},
    {"role": "listener", "delivery": "carrier-pigeon"},   # not a delivery
    {"role": "speaker", "sessionId": 42},                 # not text
    {"role": "speaker", "userId": None},
    {"role": "speaker", "dialect": "klingon"},           # not a dialect
])
def test_anything_else_is_not_an_authorizer_context(context):
    with pytest.raises(ValueError):
        ConnectionContext.from_authorizer(context)


def test_the_mapping_tables_name_the_domains_words_by_their_constants():
    # A table that spells a status, a role or a speaker's control as a literal drifts when the domain renames it.
    # (The dialects' names are their modules' names too: api/dialects/__init__.py maps one to the other.)
    words = {*domain.SESSION_STATUSES, *domain.SPEAKER_CONTROLS, *domain.ROLES}
    package = Path(domain.__file__).parent
    spelled = []
    for path in sorted([*package.glob("api/**/*.py"), *package.glob("usecases/*.py")]):
        for statement in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(statement, (ast.Assign, ast.AnnAssign)) and isinstance(statement.value, ast.Dict):
                spelled += [f"{path.relative_to(package)}:{node.lineno}: {node.value!r}"
                            for node in ast.walk(statement.value)
                            if isinstance(node, ast.Constant) and node.value in words]
    assert not spelled, spelled
