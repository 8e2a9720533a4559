"""The item keys are written once: data/table.py builds them, and the teardown workflow's Query
(statemachines/teardown.asl.json) takes them from template.yaml's DefinitionSubstitutions, held equal here."""

from __future__ import annotations

import json
from pathlib import Path

import cfnlint.decode
from session_core.data import table

ROOT = Path(__file__).resolve().parents[2]
DEFINITION = ROOT / "statemachines" / "teardown.asl.json"


def substitutions() -> dict:
    template, problems = cfnlint.decode.decode(str(ROOT / "template.yaml"))
    assert not problems, problems
    return template["Resources"]["TeardownStateMachine"]["Properties"]["DefinitionSubstitutions"]


def test_the_workflows_key_prefixes_are_the_table_modules():
    given = substitutions()
    assert given["SessionKeyPrefix"] + "golden-eagle-427" == table.session_partition("golden-eagle-427")["S"]
    assert given["ConnectionKeyPrefix"] == table.CONNECTION_PREFIX
    assert table.connection_key("golden-eagle-427", "abc=")["sk"]["S"] == given["ConnectionKeyPrefix"] + "abc="


def test_the_workflow_writes_no_key_of_its_own():
    text = DEFINITION.read_text(encoding="utf-8")
    assert "SESSION#" not in text and "CONN#" not in text
    for key, value in substitutions().items():
        text = text.replace("${" + key + "}", value if isinstance(value, str) else key)
    # Both Query states, once substituted, ask for the session's connection items as table.py keys them.
    queries = [state["Parameters"] for state in json.loads(text)["States"].values()
               if state.get("Resource") == "arn:aws:states:::aws-sdk:dynamodb:query"]
    assert len(queries) == 2
    for query in queries:
        values = query["ExpressionAttributeValues"]
        assert values[":pk"]["S.$"] == f"States.Format('{table.session_partition('')['S']}{{}}', $.sessionId)"
        assert values[":conn"] == {"S": table.CONNECTION_PREFIX}
