"""template.yaml writes its look-alike blocks with Fn::ForEach (AWS::LanguageExtensions): expanded (and
transformed by SAM), it deploys what the template it replaced deployed, resource for resource, property for
property; only the descriptions (parameters, functions, alarms, outputs) are shorter.

template_before_foreach.json is that template (the last one written out by hand) as the project's reader
returns it, made once with:

    git show 17f221d:template.yaml | .venv/bin/python -c 'import json, sys; from local_stack.template \\
        import load_yaml; print(json.dumps(load_yaml(sys.stdin.read()), indent=1))' \\
        > tests/template/template_before_foreach.json

A change to the template that is meant to change what it deploys writes this file out again from the
changed template (`... < template.yaml > ...` in place of `git show`), its diff reviewed as the deployed change.
"""

from __future__ import annotations

import json
import re
from textwrap import dedent

import boto3
import pytest
import yaml
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

from local_stack.template import TemplateError, load_yaml
from tests.template.conftest import dashboard_body

LANGUAGE_EXTENSIONS = "AWS::LanguageExtensions"
SAM = "AWS::Serverless-2016-10-31"


@pytest.fixture(scope="module")
def before(repo_root) -> dict:
    return json.loads((repo_root / "tests" / "template" / "template_before_foreach.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def template_wide_skips(repo_root) -> set[str]:
    return set(yaml.safe_load((repo_root / ".checkov.yaml").read_text(encoding="utf-8"))["skip-check"])


def literal_subs_resolved(value):
    """What CloudFormation makes of `!Sub [text, {Name: "literal", ...}]`: the text with the literals in."""
    if isinstance(value, dict):
        sub = value.get("Fn::Sub") if len(value) == 1 else None
        if isinstance(sub, list) and all(isinstance(v, str) for v in sub[1].values()):
            text = sub[0]
            for name, literal in sub[1].items():
                text = text.replace(f"${{{name}}}", literal)
            return text
        return {key: literal_subs_resolved(item) for key, item in value.items()}
    if isinstance(value, list):
        return [literal_subs_resolved(item) for item in value]
    return value


def without_skips(resource: dict, checks: set[str]) -> dict:
    """The resource without the checkov suppressions of `checks` (and an empty Metadata left behind)."""
    resource = json.loads(json.dumps(resource))
    checkov = resource.get("Metadata", {}).get("checkov")
    if checkov:
        checkov["skip"] = [skip for skip in checkov["skip"] if skip["id"] not in checks]
        if not checkov["skip"]:
            del resource["Metadata"]["checkov"]
    if resource.get("Metadata") == {}:
        del resource["Metadata"]
    return resource


def test_the_template_declares_the_language_extensions_before_sam(template):
    # Fn::ForEach is written out first; the SAM transform then sees plain resources.
    assert template["Transform"] == [LANGUAGE_EXTENSIONS, SAM]
    assert not [key for section in ("Resources", "Outputs", "Conditions") for key in template.get(section, {})
                if key.startswith("Fn::ForEach")]


def dashboard_read(resource: dict) -> dict:
    """The resource with its DashboardBody as CloudWatch reads it (the metrics shorthand written out)."""
    resource = json.loads(json.dumps(resource))
    properties = resource["Properties"]
    properties["DashboardBody"] = dashboard_body(properties["DashboardBody"]["Fn::Sub"])
    return resource


def deployed(template: dict) -> dict:
    """What CloudFormation deploys from the template (AWS::LanguageExtensions already applied by the reader):
    the SAM transform's output, local code paths given as the S3 URIs `sam package` puts in their place."""
    data = json.loads(json.dumps(template))
    data["Transform"] = SAM
    for resource in data["Resources"].values():
        properties = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri", "DefinitionUri"):
            if isinstance(properties.get(key), str):
                properties[key] = f"s3://artifacts/{properties[key]}"
    translator = Translator(managed_policy_map={}, sam_parser=Parser(),
                            boto_session=boto3.session.Session(region_name="eu-west-1"))
    result = literal_subs_resolved(translator.translate(data, parameter_values={}, get_managed_policy_map=dict))
    # The dashboard's text is shorter (the metrics shorthand); CloudWatch reads the same dashboard.
    result["Resources"]["OperationsDashboard"] = dashboard_read(result["Resources"]["OperationsDashboard"])
    return result


# The descriptions that are shorter now (an operator's summary; docs/ has the rest), by where they live.
SHORTER_DESCRIPTIONS = {"AWS::Serverless::Function": "Description", "AWS::CloudWatch::Alarm": "AlarmDescription"}


def with_descriptions_of(template: dict, before: dict) -> dict:
    """`before` with the functions', alarms' and outputs' descriptions `template` gives them (each one there
    and not empty), so that a comparison sees every other difference, the function versions' IDs included."""
    before = json.loads(json.dumps(before))
    for name, resource in before["Resources"].items():
        key = SHORTER_DESCRIPTIONS.get(resource["Type"])
        if key:
            description = template["Resources"][name]["Properties"][key]
            assert description and resource["Properties"][key], name
            resource["Properties"][key] = description
    for name, output in before["Outputs"].items():
        assert template["Outputs"][name]["Description"] and output["Description"], name
        output["Description"] = template["Outputs"][name]["Description"]
    return before


def test_expanded_it_deploys_the_resources_of_the_template_written_out_by_hand(template, before, template_wide_skips):
    # The suppressions every resource of a type shared moved to .checkov.yaml (test_checkov.py).
    before = {**before, "Resources": {name: without_skips(resource, template_wide_skips)
                                      for name, resource in before["Resources"].items()}}
    before = with_descriptions_of(template, before)
    now, then = deployed(template), deployed(before)
    assert len(now["Resources"]) > 100 and set(now["Resources"]) == set(then["Resources"])
    for name, resource in then["Resources"].items():
        assert now["Resources"][name] == resource, name
    for section in ("AWSTemplateFormatVersion", "Description", "Conditions", "Outputs"):
        assert now[section] == then[section], section
    # The parameters' descriptions are shorter (docs/deploying.md "Template parameters" has the rest); nothing else changed.
    assert without_descriptions(now["Parameters"]) == without_descriptions(then["Parameters"])
    # Nothing else: Mappings only feed the loops.
    assert set(now) - set(then) <= {"Mappings"}
    # What only the build and the scan read (the SAM transform drops it): unchanged as well.
    for name, resource in before["Resources"].items():
        assert template["Resources"][name].get("Metadata") == resource.get("Metadata"), name


def without_descriptions(parameters: dict) -> dict:
    return {name: {key: value for key, value in parameter.items() if key != "Description"}
            for name, parameter in parameters.items()}


def test_every_parameter_has_a_description_and_a_line_in_the_deploying_guide(template, repo_root):
    guide = (repo_root / "docs" / "deploying.md").read_text(encoding="utf-8")
    table = guide[guide.index("## Template parameters"):]
    table = table[:table.index("\n## ")] if "\n## " in table else table
    documented = {name for line in table.splitlines() if line.startswith("| `")
                  for name in re.findall(r"`(\w+)`", line.split(" | ")[0])}
    for name, parameter in template["Parameters"].items():
        assert parameter.get("Description", "").strip(), name
    assert set(template["Parameters"]) == documented, set(template["Parameters"]) ^ documented


def test_the_template_wide_skips_were_on_every_resource_of_their_type(before, template_wide_skips):
    skipped_by_type: dict[str, set[str]] = {}
    for name, resource in before["Resources"].items():
        ids = {skip["id"] for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])}
        skipped_by_type.setdefault(resource["Type"], set()).update(f"{name}:{check}" for check in ids)
    for check in template_wide_skips:
        types = {rtype for rtype, skips in skipped_by_type.items() if any(s.endswith(f":{check}") for s in skips)}
        assert types, check
        for rtype in types:
            resources = [name for name, res in before["Resources"].items() if res["Type"] == rtype]
            assert all(f"{name}:{check}" in skipped_by_type[rtype] for name in resources), (check, rtype)


FOREACH_TEMPLATE = """
Transform: [AWS::LanguageExtensions, AWS::Serverless-2016-10-31]
Mappings:
  Labels: {A: {Text: first}, B: {Text: second}}
Resources:
  Fn::ForEach::Topics:
    - Name
    - COLLECTION
    - Topic${Name}:
        Type: AWS::SNS::Topic
        Properties:
          DisplayName: !Sub ${Name} in ${AWS::StackName}
          TopicName: !FindInMap [Labels, !Ref Name, Text]
          Tags: [{Key: peer, Value: {Ref: !Sub "Topic${Name}"}}]
"""


def foreach_template(collection: str) -> str:
    return dedent(FOREACH_TEMPLATE).replace("COLLECTION", collection)


def test_the_reader_writes_out_a_loop_as_cloudformation_does():
    resources = load_yaml(foreach_template("[A, B]"))["Resources"]
    assert resources == {
        f"Topic{name}": {"Type": "AWS::SNS::Topic", "Properties": {
            "DisplayName": {"Fn::Sub": f"{name} in ${{AWS::StackName}}"},
            "TopicName": text,
            "Tags": [{"Key": "peer", "Value": {"Ref": f"Topic{name}"}}]}}
        for name, text in (("A", "first"), ("B", "second"))}


@pytest.mark.parametrize(("collection", "reason"), [
    ("[A, A]", "Duplicate TopicA"),
    ("not-a-list", "Collection must be a list"),
])
def test_a_loop_cloudformation_would_refuse_is_a_template_error(collection, reason):
    with pytest.raises(TemplateError, match=f"AWS::LanguageExtensions: .*{reason}"):
        load_yaml(foreach_template(collection))


def test_without_the_transform_a_loop_is_left_as_written():
    text = foreach_template("[A, B]").replace("AWS::LanguageExtensions, ", "")
    assert list(load_yaml(text)["Resources"]) == ["Fn::ForEach::Topics"]
