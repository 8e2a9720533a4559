"""What SAM expands, the local stack reads from the SAM transform's output: the API and functions it serves
are the ones CloudFormation deploys (Globals, implicit API, aliases, the OpenAPI body of each HTTP API)."""

from pathlib import Path
from textwrap import dedent

import pytest

from local_stack.streams import stream_mappings
from local_stack.template import IMPLICIT_HTTP_API, Cors, Template, TemplateError, load_yaml

IMPLICIT = """
Globals:
  Function:
    CodeUri: functions/shared
    Runtime: python3.13
    Environment:
      Variables: {FROM_GLOBALS: "1"}
  HttpApi:
    CorsConfiguration: true
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Handler: app.handler
      AutoPublishAlias: live
      Events:
        Any: {Type: HttpApi}
        Proxy:
          Type: HttpApi
          Properties: {Path: "/files/{proxy+}", Method: any, TimeoutInMillis: 5000}
"""


def template(text: str) -> Template:
    return Template(load_yaml(dedent(text)), Path("/project"))


def test_globals_of_the_implicit_api_and_of_functions_apply_as_deployed():
    t = template(IMPLICIT)
    (api,) = t.http_apis()
    assert api.logical_id == IMPLICIT_HTTP_API and api.stage == "$default"
    # CorsConfiguration: true deploys allowOrigins * and nothing else.
    assert api.cors == Cors(allow_origins=("*",))
    (fn,) = t.functions().values()
    assert fn.code_dir == Path("/project/functions/shared") and fn.environment == {"FROM_GLOBALS": "1"}
    assert (fn.timeout, fn.memory_size) == (3.0, 128)  # Lambda's defaults: neither is set


def test_routes_behind_an_alias_invoke_the_function_with_the_event_timeout():
    (api,) = template(IMPLICIT).http_apis()
    routes = {route.route_key: route for route in api.routes}
    assert set(routes) == {"$default", "ANY /files/{proxy+}"}
    assert {route.function for route in api.routes} == {"Fn"}  # integrated through Fn's alias "live"
    assert routes["ANY /files/{proxy+}"].timeout_ms == 5000 and routes["$default"].timeout_ms == 30_000


@pytest.mark.parametrize("event, message", [
    ("{Path: /a, Method: get, PayloadFormatVersion: '1.0'}", "only PayloadFormatVersion 2.0"),
    ("{Path: /a, Method: get, Auth: {Authorizer: AWS_IAM}}", "AWS_IAM authorization is not emulated"),
])
def test_what_the_local_stack_does_not_emulate_is_a_template_error_naming_the_route(event, message):
    t = template(IMPLICIT.replace("Any: {Type: HttpApi}", f"Any: {{Type: HttpApi, Properties: {event}}}")
                 .replace("    CorsConfiguration: true", "    CorsConfiguration: true\n    Auth: {EnableIamAuthorizer: true}"))
    with pytest.raises(TemplateError, match=rf"route GET /a: {message}"):
        t.http_apis()


def test_a_template_the_transform_refuses_is_a_template_error():
    t = template(IMPLICIT.replace("    Runtime: python3.13\n", "    Runtime: python3.13\n    NoSuchProperty: 1\n"))
    with pytest.raises(TemplateError, match="the SAM transform refused the template"):
        t.functions()


STREAMS = """
Parameters:
  Broadcast: {Type: String, Default: "yes"}
Conditions:
  WithBroadcast: !Equals [!Ref Broadcast, "yes"]
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
      StreamSpecification: {StreamViewType: NEW_AND_OLD_IMAGES}
  Broadcaster:
    Type: AWS::Serverless::Function
    Condition: WithBroadcast
    Properties:
      CodeUri: fn
      Handler: app.handler
      Runtime: python3.13
      AutoPublishAlias: live
      Events:
        Changes:
          Type: DynamoDB
          Properties: {Stream: !GetAtt Table.StreamArn, StartingPosition: LATEST, BatchSize: 10}
"""


def test_stream_events_are_the_transforms_mappings_through_the_alias_and_under_the_condition():
    (mapping,) = stream_mappings(template(STREAMS))
    assert (mapping.function, mapping.table, mapping.batch_size) == ("Broadcaster", "Table", 10)
    off = Template(load_yaml(dedent(STREAMS)), Path("/project"), parameter_overrides={"Broadcast": "no"})
    assert stream_mappings(off) == []
