"""Template reading: short-form tags, parameters, conditions, globals, env resolution, routes, authorizers."""

from pathlib import Path
from textwrap import dedent

import pytest

from local_stack.template import IMPLICIT_HTTP_API, Physical, Template, TemplateError, load_yaml

ROOT = Path(__file__).resolve().parents[2]


def template(text: str, **kwargs) -> Template:
    return Template(load_yaml(dedent(text)), Path("/project"), **kwargs)


BASE = """
Parameters:
  Stage:
    Type: String
    Default: dev
    AllowedPattern: "^[a-z]+$"
  Origins:
    Type: CommaDelimitedList
    Default: "https://a.test,https://b.test"
  Ttl:
    Type: Number
    Default: 24
    MinValue: 1
    MaxValue: 48
  PoolId:
    Type: String
    Default: ""
Mappings:
  Sizes:
    dev: {Memory: 256}
Conditions:
  CreatePool: !Equals [!Ref PoolId, ""]
  NotCreatePool: !Not [!Condition CreatePool]
  Both: !And [!Condition CreatePool, !Equals [!Ref Stage, dev]]
  Either: !Or [!Condition NotCreatePool, !Equals [!Ref Stage, prod]]
Globals:
  Function:
    Runtime: python3.13
    Timeout: 10
    MemorySize: 512
    Layers:
      - !Ref CoreLayer
      - !Sub arn:${AWS::Partition}:lambda:${AWS::Region}:017000801446:layer:Powertools:3
    Environment:
      Variables:
        TABLE_NAME: !Ref Table
        TTL_HOURS: !Ref Ttl
        SHARED: from-globals
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
  Pool:
    Type: AWS::Cognito::UserPool
    Condition: CreatePool
  PoolClient:
    Type: AWS::Cognito::UserPoolClient
    Condition: CreatePool
    Properties:
      UserPoolId: !Ref Pool
  CoreLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: layers/core
  Api:
    Type: AWS::Serverless::HttpApi
    Properties:
      StageName: !Ref Stage
      CorsConfiguration:
        AllowOrigins: !Ref Origins
        AllowHeaders: [Authorization, Content-Type]
        AllowMethods: [get, post]
        ExposeHeaders: [Location]
        MaxAge: 600
      Auth:
        DefaultAuthorizer: Jwt
        Authorizers:
          Jwt:
            IdentitySource: $request.header.Authorization
            JwtConfiguration:
              issuer: !Sub
                - https://cognito-idp.${AWS::Region}.amazonaws.com/${Id}
                - Id: !If [CreatePool, !Ref Pool, !Ref PoolId]
              audience:
                - !If [CreatePool, !Ref PoolClient, !Ref "AWS::NoValue"]
  OneFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/one
      Handler: app.handler
      Timeout: 3
      MemorySize: !FindInMap [Sizes, !Ref Stage, Memory]
      Layers: [arn:aws:lambda:eu-west-1:123:layer:Extra:1]
      Environment:
        Variables:
          SHARED: from-function
          TABLE_ARN: !GetAtt Table.Arn
          POOL: !If [CreatePool, !Ref Pool, !Ref "AWS::NoValue"]
          JOINED: !Join ["-", [!Select [1, !Split [",", "a,b,c"]], !Ref "AWS::AccountId"]]
          SUBBED: !Sub "${Stage}/${Table}/${Table.Arn}/${!Literal}"
          FLAG: !If [Both, "yes", "no"]
          OTHER: !If [Either, "yes", "no"]
      Events:
        Create:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Method: post, Path: /things}
        Read:
          Type: HttpApi
          Properties:
            ApiId: !Ref Api
            Method: GET
            Path: /things/{thingId}
            Auth: {Authorizer: NONE}
"""

PHYSICAL = {
    "Table": Physical("local-Table", {"Arn": "arn:aws:dynamodb:eu-west-1:123456789012:table/local-Table"}),
    "Pool": Physical("eu-west-1_pool"),
    "PoolClient": Physical("client123"),
}


def test_short_form_tags_become_long_form():
    data = load_yaml("""
    a: !Ref X
    b: !GetAtt R.Attr.Sub
    c: !Sub ["${A}", {A: 1}]
    d: !If [C, 1, 2]
    e: !Condition C
    f: !ImportValue shared
    g: !Select [0, !Split [",", "x,y"]]
    h: !Join ["", [!Base64 x]]
    date: 2010-09-09
    """)
    assert data["a"] == {"Ref": "X"}
    assert data["b"] == {"Fn::GetAtt": ["R", "Attr.Sub"]}
    assert data["c"] == {"Fn::Sub": ["${A}", {"A": 1}]}
    assert data["d"] == {"Fn::If": ["C", 1, 2]}
    assert data["e"] == {"Condition": "C"}
    assert data["f"] == {"Fn::ImportValue": "shared"}
    assert data["g"] == {"Fn::Select": [0, {"Fn::Split": [",", "x,y"]}]}
    assert data["h"] == {"Fn::Join": ["", [{"Fn::Base64": "x"}]]}
    assert data["date"] == "2010-09-09"


def test_invalid_yaml_is_a_template_error():
    with pytest.raises(TemplateError, match="not valid YAML"):
        load_yaml("a: [unclosed")


def test_parameters_defaults_overrides_and_conditions():
    t = template(BASE)
    assert t.parameters == {"Stage": "dev", "Origins": ["https://a.test", "https://b.test"], "Ttl": "24",
                            "PoolId": ""}
    assert t.conditions == {"CreatePool": True, "NotCreatePool": False, "Both": True, "Either": False}

    t = template(BASE, parameter_overrides={"PoolId": "eu-west-1_x", "Stage": "prod"})
    assert t.conditions == {"CreatePool": False, "NotCreatePool": True, "Both": False, "Either": True}
    assert "Pool" not in t.resources and "PoolClient" not in t.resources


@pytest.mark.parametrize("overrides, message", [
    ({"Nope": "1"}, "unknown parameter"),
    ({"Stage": "Bad-Stage"}, "AllowedPattern"),
    ({"Ttl": "100"}, "MaxValue"),
    ({"Ttl": "many"}, "not a number"),
])
def test_bad_parameter_overrides_are_rejected(overrides, message):
    with pytest.raises(TemplateError, match=message):
        template(BASE, parameter_overrides=overrides)


def test_globals_merge_into_functions_and_environment_resolves_to_local_values():
    (fn,) = template(BASE).functions(PHYSICAL).values()
    assert fn.runtime == "python3.13"
    assert fn.timeout == 3.0  # the function's scalar wins over Globals
    assert fn.memory_size == 256  # FindInMap
    assert fn.code_dir == Path("/project/functions/one")
    assert fn.layer_dirs == (Path("/project/layers/core"),)
    # Managed layers (globals first, then the function's) are served by the venv.
    assert fn.skipped_layers == ("arn:aws:lambda:eu-west-1:017000801446:layer:Powertools:3",
                                 "arn:aws:lambda:eu-west-1:123:layer:Extra:1")
    assert fn.environment == {
        "TABLE_NAME": "local-Table",
        "TTL_HOURS": "24",
        "SHARED": "from-function",
        "TABLE_ARN": "arn:aws:dynamodb:eu-west-1:123456789012:table/local-Table",
        "POOL": "eu-west-1_pool",
        "JOINED": "b-123456789012",
        "SUBBED": "dev/local-Table/arn:aws:dynamodb:eu-west-1:123456789012:table/local-Table/${Literal}",
        "FLAG": "yes",
        "OTHER": "no",
    }
    assert fn.function_name == "local-OneFunction"


def test_no_value_drops_the_variable():
    t = template(BASE, parameter_overrides={"PoolId": "eu-west-1_x"})
    (fn,) = t.functions(PHYSICAL).values()
    assert "POOL" not in fn.environment


def test_unprovisioned_resources_get_deterministic_stand_ins():
    (fn,) = template(BASE).functions().values()
    assert fn.environment["TABLE_NAME"] == "local-Table"
    assert fn.environment["TABLE_ARN"] == "arn:aws:dynamodb:eu-west-1:123456789012:table/local-Table"


def test_routes_authorizer_and_cors():
    (api,) = template(BASE).http_apis(PHYSICAL)
    assert api.logical_id == "Api" and api.stage == "dev" and len(api.api_id) == 10
    create, read = api.routes
    assert (create.method, create.path, create.route_key, create.function) == \
        ("POST", "/things", "POST /things", "OneFunction")
    assert create.authorizer.issuer == "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_pool"
    assert create.authorizer.audiences == ("client123",)
    assert create.authorizer.identity_sources == ("$request.header.Authorization",)
    assert read.route_key == "GET /things/{thingId}" and read.authorizer is None  # Auth: Authorizer: NONE
    assert api.cors.allow_origins == ("https://a.test", "https://b.test")
    assert api.cors.allow_headers == ("authorization", "content-type")
    assert api.cors.allow_methods == ("GET", "POST")
    assert api.cors.expose_headers == ("location",)
    assert api.cors.max_age == 600


def test_implicit_api_for_events_without_api_id():
    t = template("""
    Resources:
      Fn:
        Type: AWS::Serverless::Function
        Properties:
          Runtime: python3.13
          CodeUri: fn
          Handler: app.handler
          Events:
            Any: {Type: HttpApi}
    """)
    (api,) = t.http_apis()
    assert api.logical_id == IMPLICIT_HTTP_API and api.stage == "$default"
    assert api.routes[0].route_key == "$default" and api.routes[0].authorizer is None


@pytest.mark.parametrize("snippet, message", [
    ("X: !ImportValue other-stack-output", "can't be imported locally"),
    ("X: !GetAtt Table.NoSuchAttr", "not available in the local stack"),
    ("X: !Ref Nowhere", "unknown resource or parameter"),
    ("X: !Cidr [10.0.0.0/16, 2, 8]", "not supported"),
    ("X: !Select [5, [a]]", "invalid arguments"),
])
def test_unsupported_or_wrong_intrinsics_are_clear_errors(snippet, message):
    text = BASE.replace("          SHARED: from-function", f"          SHARED: from-function\n          {snippet}")
    with pytest.raises(TemplateError, match=message):
        template(text).functions(PHYSICAL)


def test_ref_to_a_resource_whose_condition_is_false():
    t = template(BASE, parameter_overrides={"PoolId": "eu-west-1_x"})
    with pytest.raises(TemplateError, match="Condition is false"):
        t.resolve({"Ref": "Pool"})


def test_lambda_authorizers_are_reported_as_unsupported():
    t = template("""
    Resources:
      Api:
        Type: AWS::Serverless::HttpApi
        Properties:
          Auth:
            Authorizers:
              Custom:  # as SAM accepts it (the transform requires the payload format)
                FunctionArn: arn:aws:lambda:eu-west-1:123456789012:function:auth
                AuthorizerPayloadFormatVersion: "2.0"
    """)
    with pytest.raises(TemplateError, match="only JWT authorizers"):
        t.http_apis()


def test_missing_file_and_missing_resources():
    with pytest.raises(TemplateError, match="cannot read template"):
        Template.load("/nonexistent/template.yaml")
    with pytest.raises(TemplateError, match="no Resources"):
        Template(load_yaml("a: 1"), Path("."))


def test_the_project_template():
    t = Template.load(ROOT / "template.yaml")
    physical = {"UserPool": Physical("eu-west-1_local"), "UserPoolClient": Physical("localclient"),
                "SessionsTable": Physical("local-SessionsTable", {"Arn": "arn:aws:dynamodb:x"})}
    functions = t.functions(physical)
    assert functions, "the template declares functions"
    for fn in functions.values():
        assert fn.environment["TABLE_NAME"] == "local-SessionsTable"
        assert (ROOT / "layers/session_core") in fn.layer_dirs
        assert fn.skipped_layers == (), "every layer is built from this repository"
    (api,) = [a for a in t.http_apis(physical) if a.logical_id == "HttpApi"]
    assert api.stage == "dev"
    assert "POST /sessions" in {r.route_key for r in api.routes}
    for route in api.routes:
        assert route.authorizer.issuer == "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_local"
        assert route.authorizer.audiences == ("localclient",)


def test_outputs_resolve_like_describe_stacks_and_leave_out_false_conditions():
    t = template("""
    Parameters:
      Stage: {Type: String, Default: dev}
      WithExtra: {Type: String, Default: "no"}
    Conditions:
      Extra: !Equals [!Ref WithExtra, "yes"]
    Resources:
      Api: {Type: AWS::Serverless::HttpApi, Properties: {StageName: !Ref Stage}}
      Table: {Type: AWS::DynamoDB::Table, Properties: {}}
    Outputs:
      Url:
        Value: !Sub https://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${Stage}
      TableName:
        Value: !Ref Table
      Extra:
        Condition: Extra
        Value: !Ref WithExtra
    """)
    outputs = t.outputs({"Table": Physical("local-Table")})
    assert outputs == {"Url": "https://" + t.http_apis()[0].api_id + ".execute-api.eu-west-1.amazonaws.com/dev",
                       "TableName": "local-Table"}
