"""A second `sam deploy` reaches every function behind an alias (`AutoPublishAlias: live`).

SAM publishes a version only when the function's AWS::Lambda::Version resource changes. The SAM translator
shows that without deploying: translate the packaged template twice with one change (the layer's content, or
one parameter's value) and compare each alias's Version resource. CloudFormation publishes a new version when
the Version's logical ID changes, or when one of its properties changes (every property of
AWS::Lambda::Version is "Update requires: Replacement"), so both are compared, its properties resolved with
the deploy's parameter values as CloudFormation resolves them.

What a function "sees" is its AWS::Lambda::Function as CloudFormation deploys it, resolved (environment,
SnapStart, ...), and its layers' content: exactly the functions whose deployed configuration changes must
publish, and no other (a Version replaced while its function did not change would make Lambda hand back the
version already published, which CloudFormation would then delete).
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import boto3
import pytest
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

from local_stack.template import Template, load_yaml

ROOT = Path(__file__).resolve().parents[2]
# A String parameter without AllowedValues: a valid other value (a pool and its client change together).
OTHER_STRINGS = {
    "StageName": {"StageName": "prod"},
    "ExistingUserPoolId": {"ExistingUserPoolId": "eu-west-1_Example1", "ExistingUserPoolClientId": "1example23client"},
    "ExistingUserPoolClientId": {"ExistingUserPoolClientId": "1example23client"},
    "AlarmEmail": {"AlarmEmail": "ops@example.com"},
    "CorsAllowedOrigins": {"CorsAllowedOrigins": "https://console.example.com"},
}
# What the issue names: each of these must reach at least one function (the test is not vacuous).
NAMED = {"AllowAnonymousListeners", "LegacyWebSocketSessionCreation", "SnapStart", "MaxListenersPerSession"}


def folder_digest(folder: Path, extra: bytes = b"") -> str:
    """What `sam package` names an artifact after: a digest of its content."""
    digest = hashlib.md5(usedforsecurity=False)
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    digest.update(extra)
    return digest.hexdigest()


@pytest.fixture(scope="module")
def source() -> dict:
    return load_yaml((ROOT / "template.yaml").read_text(encoding="utf-8"))


def packaged(source: dict, layer_extra: bytes = b"") -> dict:
    """The template as `sam package` hands it to CloudFormation: each local folder an S3 URI named by its
    content; `layer_extra` stands for a change to the layer's files."""
    data = copy.deepcopy(source)
    data["Transform"] = "AWS::Serverless-2016-10-31"  # AWS::LanguageExtensions already applied by the reader
    for resource in data["Resources"].values():
        properties = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri", "DefinitionUri"):
            if isinstance(properties.get(key), str):
                folder = ROOT / properties[key]
                content = folder_digest(folder, layer_extra if key == "ContentUri" else b"") if folder.is_dir() \
                    else hashlib.md5(folder.read_bytes(), usedforsecurity=False).hexdigest()
                properties[key] = f"s3://artifacts/{content}"
    return data


def deploy(source: dict, parameters: dict[str, str], layer_extra: bytes = b"") -> dict[str, dict]:
    """Per aliased function: its Version (logical ID, resolved properties, attributes) and what it sees."""
    data = packaged(source, layer_extra)
    resolver = Template(data, ROOT, parameter_overrides=parameters)
    values = dict(resolver.parameters) | {"AWS::Region": resolver.region, "AWS::AccountId": "123456789012",
                                          "AWS::Partition": "aws", "AWS::StackName": resolver.stack_name}
    translator = Translator(managed_policy_map={}, sam_parser=Parser(),
                            boto_session=boto3.session.Session(region_name=resolver.region))
    resources = translator.translate(data, parameter_values=values, get_managed_policy_map=dict)["Resources"]
    result = {}
    for logical_id, version in resources.items():
        if version["Type"] != "AWS::Lambda::Version":
            continue
        function = version["Properties"]["FunctionName"]["Ref"]
        deployed = resources[function]["Properties"]
        layers = [resources[layer["Ref"]]["Properties"]["Content"] for layer in deployed.get("Layers", [])]
        sees = {key: resolver.resolve(value) for key, value in deployed.items() if key not in ("Role", "Layers")}
        result[function] = {
            "version": (logical_id, resolver.resolve(version["Properties"])),
            "attributes": {key: version.get(key) for key in ("DeletionPolicy", "UpdateReplacePolicy")},
            "sees": (sees, layers),
        }
    return result


def other_value(name: str, spec: dict) -> dict[str, str]:
    default = spec.get("Default")
    if "AllowedValues" in spec:
        return {name: str(next(value for value in spec["AllowedValues"] if str(value) != str(default)))}
    if spec["Type"] == "Number":
        value = default + 1 if default + 1 <= spec.get("MaxValue", default + 1) else default - 1
        return {name: str(value)}
    return OTHER_STRINGS[name]


@pytest.fixture(scope="module")
def before(source) -> dict[str, dict]:
    return deploy(source, {})


def assert_exactly_the_functions_that_see_it_publish(before: dict, after: dict) -> set[str]:
    assert set(before) == set(after) and len(before) >= 6
    sees = {name for name in before if before[name]["sees"] != after[name]["sees"]}
    publishes = {name for name in before if before[name]["version"] != after[name]["version"]}
    assert publishes == sees, {"see it, keep their version": sorted(sees - publishes),
                               "publish needlessly": sorted(publishes - sees)}
    return sees


def test_every_function_behind_an_alias_publishes_when_the_layer_changes(source, before):
    after = deploy(source, {}, layer_extra=b"# one more line\n")
    assert assert_exactly_the_functions_that_see_it_publish(before, after) == set(before)


@pytest.mark.parametrize("name", list(load_yaml((ROOT / "template.yaml").read_text(encoding="utf-8"))["Parameters"]))
def test_a_parameter_change_publishes_every_function_that_reads_it_and_no_other(source, before, name):
    change = other_value(name, source["Parameters"][name])
    sees = assert_exactly_the_functions_that_see_it_publish(before, deploy(source, change))
    if name in NAMED:
        assert sees, f"no function behind an alias reads {name}?"


def test_a_code_change_still_publishes(source, before):
    data = copy.deepcopy(source)
    data["Resources"]["GetSessionFunction"]["Properties"]["CodeUri"] = "functions/create_session"
    after = deploy(data, {})
    assert after["GetSessionFunction"]["version"] != before["GetSessionFunction"]["version"]


def test_superseded_versions_are_deleted(before):
    # A new logical ID deletes the old Version resource (DeletionPolicy), a replaced one its old version
    # (UpdateReplacePolicy, Delete when absent).
    for name, deployed in before.items():
        assert deployed["attributes"]["DeletionPolicy"] == "Delete", name
        assert deployed["attributes"]["UpdateReplacePolicy"] in (None, "Delete"), name


def test_the_version_descriptions_fit_lambdas_limit_with_the_longest_values(source):
    # Lambda refuses a version description over 256 characters. The longest stage name, a pool ID of Cognito's
    # longest (55) and an app client ID as Cognito issues them (26 characters).
    longest = {"StageName": "s" * 64, "SessionTtlHours": "720", "MaxListenersPerSession": "10000",
               "ExistingUserPoolId": "eu-west-1_" + "p" * 45, "ExistingUserPoolClientId": "c" * 26,
               "AllowAnonymousListeners": "false", "LegacyWebSocketSessionCreation": "disabled",
               "SnapStart": "disabled"}
    for name, deployed in deploy(source, longest).items():
        assert len(deployed["version"][1]["Description"]) <= 256, name
