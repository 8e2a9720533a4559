"""Reads a SAM/CloudFormation template into what the local stack runs.

The template is the single source of truth: functions, their environment,
routes, authorizers, CORS and tables all come from it. What SAM expands
(Globals, functions, HTTP APIs, event source mappings, roles) is read from the
SAM transform's output (``Template.expanded``), as CloudFormation receives it.
Intrinsic functions are resolved against LOCAL physical values (the moto table
name, the moto user pool id, ...). Nothing here talks to AWS; physical values of
the resources the stack provisions are passed in as a ``{logical_id: Physical}``
map, and every other resource gets a deterministic stand-in.
"""

from __future__ import annotations

import base64
import copy
import datetime
import functools
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import cfnlint.decode
import cfnlint.template
from cfnlint.helpers import TRANSFORM_LANGUAGE_EXTENSION, ensure_list
from cfnlint.template.transforms import Transform

ACCOUNT_ID = "123456789012"  # moto's default account
DEFAULT_REGION = "eu-west-1"
DEFAULT_STACK_NAME = "local"

SERVERLESS_FUNCTION = "AWS::Serverless::Function"
SERVERLESS_HTTP_API = "AWS::Serverless::HttpApi"
SERVERLESS_LAYER = "AWS::Serverless::LayerVersion"
IMPLICIT_HTTP_API = "ServerlessHttpApi"  # SAM's logical id for the implicit HTTP API

# API Gateway's own ceiling for an integration, used when an event sets none.
DEFAULT_INTEGRATION_TIMEOUT_MS = 30_000
# `sam package` uploads each local folder (CodeUri, ContentUri) to S3 and names the object in the template;
# the SAM transform accepts nothing else. The local stack names the folder itself in this bucket, and reads
# it back from the deployed function's Code (the layer's Content).
LOCAL_CODE_BUCKET = "local-code"


class TemplateError(Exception):
    """The template can't be read or run locally; the message says where and why."""


# --------------------------------------------------------------------------- YAML

def load_yaml(text: str) -> Any:
    """Parses template text (YAML or JSON) as CloudFormation will run it.

    cfn-lint's decoder reads the short-form tags (``!Ref``, ``!GetAtt``, ...) into their long form; a
    template that declares ``AWS::LanguageExtensions`` comes back with it applied (``Fn::ForEach``
    written out), which is what the SAM transform after it receives.
    """
    data, errors = cfnlint.decode.decode_str(text)
    if errors:
        raise TemplateError(f"template is not valid YAML or JSON: {errors[0].message}")
    if isinstance(data, dict) and TRANSFORM_LANGUAGE_EXTENSION in ensure_list(data.get("Transform", [])):
        data = _apply_language_extensions(data)
    # Plain dicts, lists and strings instead of the decoder's position-marked ones; CloudFormation reads an
    # unquoted 2010-09-09 as the string it is, where YAML 1.1 makes it a date.
    return json.loads(json.dumps(data, default=_date_as_text))


def _date_as_text(value: Any) -> str:
    if isinstance(value, datetime.date):
        return value.isoformat()
    raise TypeError(f"unexpected {type(value).__name__} in a template")


def _apply_language_extensions(data: dict) -> dict:
    # cfn-lint's own AWS::LanguageExtensions transform, alone: Template.transform() would also merge SAM
    # Globals into the resources, which is the SAM transform's job. Template() normalises the template
    # it is given for linting (it reorders Fn::Equals), so it gets a copy and the transform reads the text.
    linted = cfnlint.template.Template(None, copy.deepcopy(data))
    linted.template = data
    errors, expanded = Transform().transforms[TRANSFORM_LANGUAGE_EXTENSION](linted)
    if errors:
        raise TemplateError(f"AWS::LanguageExtensions: {errors[0].message}")
    return expanded


# ------------------------------------------------------------------ physical values


@dataclass(frozen=True)
class Physical:
    """What ``!Ref`` and ``!GetAtt`` give for one resource in the local stack."""

    ref: str
    attrs: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"ref": self.ref, "attrs": dict(self.attrs)}

    @classmethod
    def from_json(cls, data: dict) -> Physical:
        return cls(str(data["ref"]), {str(k): str(v) for k, v in (data.get("attrs") or {}).items()})


def fake_api_id(logical_id: str) -> str:
    """A stable 10-character API id, shaped like API Gateway's."""
    return hashlib.sha1(logical_id.encode()).hexdigest()[:10]


# ----------------------------------------------------------------- resolved specs


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    function_name: str
    code_dir: Path
    handler: str
    runtime: str
    layer_dirs: tuple[Path, ...]
    skipped_layers: tuple[str, ...]  # managed layer ARNs, served from the venv instead
    environment: dict[str, str]
    timeout: float  # seconds
    memory_size: int
    log_group: str
    log_format: str | None = None
    log_level: str | None = None


@dataclass(frozen=True)
class JwtAuthorizer:
    name: str
    issuer: str
    audiences: tuple[str, ...]
    identity_sources: tuple[str, ...]  # e.g. ("$request.header.Authorization",)


@dataclass(frozen=True)
class Cors:
    allow_origins: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    allow_credentials: bool = False
    max_age: int | None = None


@dataclass(frozen=True)
class Route:
    api_logical_id: str
    method: str  # upper case, or "ANY"
    path: str  # "/sessions/{sessionId}", or "$default"
    function: str  # logical id of the function
    authorizer: JwtAuthorizer | None
    scopes: tuple[str, ...] = ()
    timeout_ms: int = DEFAULT_INTEGRATION_TIMEOUT_MS

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"


@dataclass(frozen=True)
class HttpApiSpec:
    logical_id: str
    api_id: str
    stage: str
    cors: Cors | None
    routes: tuple[Route, ...]


# ----------------------------------------------------------------------- template


def _param_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _NoValue:
    """AWS::NoValue: the enclosing property or list item disappears."""


NO_VALUE = _NoValue()


class Template:
    """A parsed template: parameters and conditions evaluated; what SAM expands is read from the SAM transform."""

    def __init__(self, data: Any, base_dir: Path, *, parameter_overrides: dict[str, str] | None = None,
                 region: str = DEFAULT_REGION, stack_name: str = DEFAULT_STACK_NAME,
                 path: Path | None = None) -> None:
        if not isinstance(data, dict) or not isinstance(data.get("Resources"), dict):
            raise TemplateError("template has no Resources section")
        self.path = path
        self.base_dir = base_dir
        self.region = region
        self.stack_name = stack_name
        self._data = data
        self.parameters = self._read_parameters(data.get("Parameters") or {}, parameter_overrides or {})
        self._condition_defs = data.get("Conditions") or {}
        self._conditions: dict[str, bool] = {}
        self.conditions = {name: self.condition(name) for name in self._condition_defs}
        self.mappings = data.get("Mappings") or {}
        self.resources = self._read_resources(data["Resources"])

    # ---------------------------------------------------------------- loading

    @classmethod
    def load(cls, path: str | Path, **kwargs: Any) -> Template:
        path = Path(path).resolve()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise TemplateError(f"cannot read template {path}: {exc.strerror}") from None
        return cls(load_yaml(text), path.parent, path=path, **kwargs)

    @functools.cached_property
    def expanded(self) -> dict:
        """The template as the SAM transform hands it to CloudFormation: Globals applied, each function's
        role, its deployed properties, the HTTP APIs' OpenAPI bodies. Intrinsics are left for the resolver."""
        from samtranslator.parser.parser import Parser
        from samtranslator.translator.translator import Translator

        data = copy.deepcopy(self._data)
        for section in [*(data.get("Globals") or {}).values(), *(
                (resource.get("Properties") or {}) for resource in (data.get("Resources") or {}).values())]:
            for key in ("CodeUri", "ContentUri", "DefinitionUri"):
                if isinstance(section, dict) and isinstance(section.get(key), str):
                    section[key] = f"s3://{LOCAL_CODE_BUCKET}/{section[key]}"
        parameters = dict(self.parameters) | {
            "AWS::Region": self.region, "AWS::AccountId": ACCOUNT_ID, "AWS::Partition": "aws",
            "AWS::StackName": self.stack_name}
        # The translator asks a boto3 session for the region's partition.
        session = boto3.Session(region_name=self.region)
        try:
            return Translator(managed_policy_map={}, sam_parser=Parser(), boto_session=session).translate(
                data, parameter_values=parameters, get_managed_policy_map=dict)
        except Exception as exc:  # noqa: BLE001 - the translator reports template errors as exceptions
            raise TemplateError(f"the SAM transform refused the template: {exc}") from None

    def _read_parameters(self, declared: dict, overrides: dict[str, str]) -> dict[str, Any]:
        unknown = sorted(set(overrides) - set(declared))
        if unknown:
            raise TemplateError(f"unknown parameter(s): {', '.join(unknown)} "
                                f"(declared: {', '.join(declared) or 'none'})")
        values: dict[str, Any] = {}
        for name, spec in declared.items():
            spec = spec or {}
            if name in overrides:
                raw = _param_str(overrides[name])
            elif "Default" in spec:
                raw = _param_str(spec["Default"]) if not isinstance(spec["Default"], list) \
                    else ",".join(map(_param_str, spec["Default"]))
            else:
                raise TemplateError(f"parameter {name} has no Default; pass it with --parameter-overrides {name}=...")
            self._check_parameter(name, spec, raw)
            ptype = str(spec.get("Type", "String"))
            is_list = ptype == "CommaDelimitedList" or ptype.startswith("List<")
            values[name] = [item.strip() for item in raw.split(",")] if is_list else raw
        return values

    @staticmethod
    def _check_parameter(name: str, spec: dict, raw: str) -> None:
        allowed = spec.get("AllowedValues")
        if allowed is not None and raw not in [_param_str(v) for v in allowed]:
            raise TemplateError(f"parameter {name}={raw!r} is not one of its AllowedValues")
        pattern = spec.get("AllowedPattern")
        if pattern and not re.fullmatch(pattern, raw):
            raise TemplateError(f"parameter {name}={raw!r} does not match AllowedPattern {pattern}")
        if spec.get("Type") == "Number":
            try:
                number = float(raw)
            except ValueError:
                raise TemplateError(f"parameter {name}={raw!r} is not a number") from None
            if "MinValue" in spec and number < float(spec["MinValue"]):
                raise TemplateError(f"parameter {name}={raw} is below MinValue {spec['MinValue']}")
            if "MaxValue" in spec and number > float(spec["MaxValue"]):
                raise TemplateError(f"parameter {name}={raw} is above MaxValue {spec['MaxValue']}")

    def condition(self, name: str, _stack: tuple[str, ...] = ()) -> bool:
        if name in self._conditions:
            return self._conditions[name]
        if name not in self._condition_defs:
            raise TemplateError(f"unknown condition {name!r}")
        if name in _stack:
            raise TemplateError(f"condition {name!r} depends on itself")
        value = _Resolver(self, {}, _stack + (name,)).resolve(self._condition_defs[name], f"Conditions.{name}")
        if not isinstance(value, bool):
            raise TemplateError(f"condition {name!r} does not evaluate to true/false")
        self._conditions[name] = value
        return value

    def _read_resources(self, resources: dict) -> dict[str, dict]:
        active: dict[str, dict] = {}
        for logical_id, resource in resources.items():
            if not isinstance(resource, dict) or "Type" not in resource:
                raise TemplateError(f"resource {logical_id} has no Type")
            if "Condition" in resource and not self.condition(resource["Condition"]):
                continue
            resource = copy.deepcopy(resource)
            resource.setdefault("Properties", {})
            active[logical_id] = resource
        return active

    # -------------------------------------------------------------- resolving

    def resolver(self, physical: dict[str, Physical] | None = None) -> _Resolver:
        return _Resolver(self, physical or {})

    def resolve(self, value: Any, physical: dict[str, Physical] | None = None, where: str = "") -> Any:
        return self.resolver(physical).resolve(value, where)

    def resources_of_type(self, *types: str) -> dict[str, dict]:
        return {lid: res for lid, res in self.resources.items() if res["Type"] in types}

    def default_physical(self, logical_id: str, resolver: _Resolver) -> Physical:
        """A deterministic stand-in for a resource the local stack doesn't provision."""
        resource = self.resources[logical_id]
        rtype, props = resource["Type"], resource["Properties"]
        region, name = self.region, f"{self.stack_name}-{logical_id}"

        def prop(key: str, default: str) -> str:
            return str(resolver.resolve(props[key], f"{logical_id}.{key}")) if key in props else default

        if rtype in (SERVERLESS_FUNCTION, "AWS::Lambda::Function"):
            fname = prop("FunctionName", name)
            return Physical(fname, {"Arn": f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{fname}"})
        if rtype == "AWS::DynamoDB::Table":
            table = prop("TableName", name)
            arn = f"arn:aws:dynamodb:{region}:{ACCOUNT_ID}:table/{table}"
            return Physical(table, {"Arn": arn, "StreamArn": f"{arn}/stream/1970-01-01T00:00:00.000"})
        if rtype == "AWS::Logs::LogGroup":
            group = prop("LogGroupName", f"/aws/{name}")
            return Physical(group, {"Arn": f"arn:aws:logs:{region}:{ACCOUNT_ID}:log-group:{group}:*"})
        if rtype in (SERVERLESS_LAYER, "AWS::Lambda::LayerVersion"):
            lname = prop("LayerName", name)
            return Physical(f"arn:aws:lambda:{region}:{ACCOUNT_ID}:layer:{lname}:1")
        if rtype in (SERVERLESS_HTTP_API, "AWS::Serverless::WebSocketApi", "AWS::ApiGatewayV2::Api"):
            api_id = fake_api_id(logical_id)
            scheme = "wss" if rtype == "AWS::Serverless::WebSocketApi" else "https"
            return Physical(api_id, {"ApiId": api_id,
                                     "ApiEndpoint": f"{scheme}://{api_id}.execute-api.{region}.amazonaws.com"})
        if rtype in ("AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine"):
            machine = prop("StateMachineName" if rtype.startswith("AWS::Step") else "Name", name)
            arn = f"arn:aws:states:{region}:{ACCOUNT_ID}:stateMachine:{machine}"
            return Physical(arn, {"Arn": arn, "Name": machine})  # Ref of a state machine is its ARN
        if rtype == "AWS::Kinesis::Stream":
            stream = prop("Name", name)
            return Physical(stream, {"Arn": f"arn:aws:kinesis:{region}:{ACCOUNT_ID}:stream/{stream}"})
        if rtype == "AWS::Kinesis::StreamConsumer":
            consumer = prop("ConsumerName", name)
            arn = f"arn:aws:kinesis:{region}:{ACCOUNT_ID}:stream/{name}/consumer/{consumer}:0"
            return Physical(arn, {"ConsumerARN": arn, "ConsumerName": consumer})
        service = rtype.split("::")[1].lower() if rtype.count("::") == 2 else "local"
        return Physical(name, {"Arn": f"arn:aws:{service}:{region}:{ACCOUNT_ID}:{name}"})

    # ----------------------------------------------------------- functions

    def functions(self, physical: dict[str, Physical] | None = None) -> dict[str, FunctionSpec]:
        """Each function as CloudFormation deploys it (the SAM transform's AWS::Lambda::Function)."""
        resolver, deployed = self.resolver(physical), self.expanded["Resources"]
        return {lid: self._function(lid, deployed, resolver) for lid in self.resources_of_type(SERVERLESS_FUNCTION)}

    def _local_folder(self, code: Any, what: str) -> Path:
        if not (isinstance(code, dict) and code.get("S3Bucket") == LOCAL_CODE_BUCKET and code.get("S3Key")):
            raise TemplateError(f"{what} must be a local folder")
        return (self.base_dir / code["S3Key"]).resolve()

    def _function(self, logical_id: str, deployed: dict, resolver: _Resolver) -> FunctionSpec:
        where = f"Resources.{logical_id}.Properties"
        props = deployed[logical_id]["Properties"]
        if props.get("PackageType", "Zip") != "Zip":
            raise TemplateError(f"{logical_id}: only Zip functions run locally (PackageType is {props['PackageType']})")
        runtime = str(resolver.resolve(props.get("Runtime", ""), f"{where}.Runtime"))
        if not runtime.startswith("python"):
            raise TemplateError(f"{logical_id}: runtime {runtime or '(none)'} is not supported locally, only python")
        code_dir = self._local_folder(props.get("Code"), f"{logical_id}: CodeUri")
        handler = resolver.resolve(props.get("Handler"), f"{where}.Handler")
        if not isinstance(handler, str) or "." not in handler:
            raise TemplateError(f"{logical_id}: Handler must look like module.function")

        layer_dirs: list[Path] = []
        skipped: list[str] = []
        for index, layer in enumerate(props.get("Layers") or []):
            # The transform renames a template's layer (a hash of its content is appended) and refers to it by Ref.
            target = layer.get("Ref") if isinstance(layer, dict) and set(layer) == {"Ref"} else None
            if (deployed.get(target) or {}).get("Type") == "AWS::Lambda::LayerVersion":
                layer_dirs.append(self._local_folder(deployed[target]["Properties"].get("Content"),
                                                     f"layer {target}: ContentUri"))
            else:
                # Managed layers (Powertools) are provided by the venv.
                skipped.append(str(resolver.resolve(layer, f"{where}.Layers[{index}]")))

        variables = ((props.get("Environment") or {}).get("Variables")) or {}
        environment: dict[str, str] = {}
        for key, value in variables.items():
            value = resolver.resolve(value, f"{where}.Environment.Variables.{key}")
            if value is NO_VALUE:
                continue
            if isinstance(value, (dict, list)):
                raise TemplateError(f"{logical_id}: environment variable {key} is not a string")
            environment[str(key)] = _param_str(value)

        logging_config = resolver.resolve(props.get("LoggingConfig") or {}, f"{where}.LoggingConfig")
        function_name = resolver.ref(logical_id, where)
        log_group = logging_config.get("LogGroup") or f"/aws/lambda/{function_name}"
        try:
            timeout = float(resolver.resolve(props.get("Timeout", 3), f"{where}.Timeout"))
            memory = int(resolver.resolve(props.get("MemorySize", 128), f"{where}.MemorySize"))
        except (TypeError, ValueError):
            raise TemplateError(f"{logical_id}: Timeout and MemorySize must be numbers") from None
        return FunctionSpec(
            logical_id=logical_id,
            function_name=function_name,
            code_dir=code_dir,
            handler=handler,
            runtime=runtime,
            layer_dirs=tuple(layer_dirs),
            skipped_layers=tuple(skipped),
            environment=environment,
            timeout=timeout,
            memory_size=memory,
            log_group=str(log_group),
            log_format=logging_config.get("LogFormat"),
            log_level=logging_config.get("ApplicationLogLevel"),
        )

    def deployed(self, *types: str) -> dict[str, dict]:
        """The resources of these types CloudFormation creates (the SAM transform's output) whose Condition holds."""
        return {lid: res for lid, res in self.expanded["Resources"].items()
                if res.get("Type") in types and ("Condition" not in res or self.condition(res["Condition"]))}

    def function_of(self, value: Any, where: str) -> str:
        """The logical id of the function a property names: `!Ref Fn`, SAM's `!Ref Fn.Alias` or the alias
        the transform makes of it (the AutoPublishAlias; the local stack has no versions) or `!GetAtt Fn.Arn`.
        ValueError otherwise."""
        target = None
        if isinstance(value, dict) and isinstance(value.get("Ref"), str):
            target = value["Ref"].removesuffix(".Alias")
        elif isinstance(value, dict) and "Fn::GetAtt" in value:
            getatt = value["Fn::GetAtt"]
            target = (getatt.split(".", 1) if isinstance(getatt, str) else getatt)[0]
        alias = self.deployed("AWS::Lambda::Alias").get(target) if isinstance(target, str) else None
        if alias:
            target = ((alias.get("Properties") or {}).get("FunctionName") or {}).get("Ref")
        if target not in self.resources_of_type(SERVERLESS_FUNCTION, "AWS::Lambda::Function"):
            raise ValueError(f"{where}: the local stack needs !GetAtt <Function>.Arn, !Ref <Function> or "
                             f"!Ref <Function>.Alias of this template here, got {value!r}")
        return target

    # -------------------------------------------------------------- outputs

    def outputs(self, physical: dict[str, Physical] | None = None) -> dict[str, str]:
        """The template's Outputs as strings, as a deployed stack's describe_stacks gives them
        (outputs whose Condition is false are left out, as CloudFormation does)."""
        resolver = self.resolver(physical)
        values = {}
        for name, output in (self._data.get("Outputs") or {}).items():
            if "Condition" in output and not self.condition(output["Condition"]):
                continue
            value = resolver.resolve(output.get("Value"), f"Outputs.{name}.Value")
            if value is NO_VALUE or isinstance(value, dict):
                raise TemplateError(f"Outputs.{name}.Value is not a string")
            values[name] = ",".join(map(_param_str, value)) if isinstance(value, list) else _param_str(value)
        return values

    # ------------------------------------------------------------ HTTP APIs

    def http_apis(self, physical: dict[str, Physical] | None = None) -> list[HttpApiSpec]:
        """Each HTTP API as CloudFormation deploys it: the OpenAPI body the SAM transform writes (routes, their
        integrations, authorizers and CORS; Globals applied) and the API's stage. The implicit API of
        events without ApiId is SAM's ServerlessHttpApi."""
        resolver, deployed = self.resolver(physical), self.expanded["Resources"]
        specs = []
        for lid in [*self.resources_of_type(SERVERLESS_HTTP_API), IMPLICIT_HTTP_API]:
            api = deployed.get(lid) or {}
            body = (api.get("Properties") or {}).get("Body")
            if api.get("Type") != "AWS::ApiGatewayV2::Api" or not isinstance(body, dict):
                continue
            where = f"Resources.{lid}"
            authorizers = self._authorizers(body, where, resolver)
            routes = tuple(self._route(lid, path, method, operation, body, authorizers, resolver)
                           for path, methods in (body.get("paths") or {}).items()
                           for method, operation in methods.items() if isinstance(operation, dict))
            stages = [res["Properties"].get("StageName") for res in self.deployed("AWS::ApiGatewayV2::Stage").values()
                      if (res.get("Properties") or {}).get("ApiId") == {"Ref": lid}]
            stage = stages[0] if stages else "$default"
            cors = resolver.resolve(body.get("x-amazon-apigateway-cors"), f"{where}.CorsConfiguration")
            api_id = str(resolver.ref(lid, lid)) if lid in self.resources else fake_api_id(lid)
            specs.append(HttpApiSpec(lid, api_id, str(resolver.resolve(stage, f"{where}.StageName")),
                                     self._cors(cors), routes))
        return specs

    def _route(self, api_id: str, path: str, method: str, operation: dict, body: dict,
               authorizers: dict[str, JwtAuthorizer], resolver: _Resolver) -> Route:
        method = "ANY" if method == "x-amazon-apigateway-any-method" else method.upper()
        where = f"Resources.{api_id}: route {method} {path}"
        integration = operation.get("x-amazon-apigateway-integration") or {}
        if str(resolver.resolve(integration.get("payloadFormatVersion", "2.0"), where)) != "2.0":
            raise TemplateError(f"{where}: only PayloadFormatVersion 2.0 is emulated locally")
        # An operation's security overrides the API's; SAM writes each route's, NONE for no authorizer.
        requirement = (operation.get("security", body.get("security")) or [{}])[0]
        name, scopes = next(iter(requirement.items()), (None, []))
        if name == "AWS_IAM":
            raise TemplateError(f"{where}: AWS_IAM authorization is not emulated locally")
        if name not in (None, "NONE") and name not in authorizers:
            raise TemplateError(f"{where}: authorizer {name!r} is not defined on {api_id}")
        scopes = resolver.resolve(scopes, f"{where}.AuthorizationScopes") if name in authorizers else []
        return Route(api_id, method, path, self._integrated_function(operation, where),
                     authorizers.get(name), tuple(str(s) for s in scopes),
                     int(resolver.resolve(integration.get("timeoutInMillis", DEFAULT_INTEGRATION_TIMEOUT_MS), where)))

    _INVOCATION = re.compile(r"/functions/\$\{([^}.]+)(?:\.Arn)?\}/invocations$")

    def _integrated_function(self, operation: dict, where: str) -> str:
        """The function behind a route: SAM's integration URI names it, or its AutoPublishAlias."""
        uri = (operation.get("x-amazon-apigateway-integration") or {}).get("uri")
        found = self._INVOCATION.search(uri.get("Fn::Sub", "")) if isinstance(uri, dict) else None
        try:
            return self.function_of({"Ref": found.group(1) if found else None}, where)
        except ValueError:
            raise TemplateError(f"{where}: the local stack runs only functions of this template behind a route") \
                from None

    @staticmethod
    def _cors(config: Any) -> Cors | None:
        """x-amazon-apigateway-cors as the transform writes it (CorsConfiguration: true is allowOrigins *)."""
        if not isinstance(config, dict):
            return None

        def strings(key: str) -> tuple[str, ...]:
            value = config.get(key) or []
            return tuple(str(v) for v in ([value] if isinstance(value, str) else value))

        max_age = config.get("maxAge")
        return Cors(
            allow_origins=strings("allowOrigins"),
            allow_headers=tuple(h.lower() for h in strings("allowHeaders")),
            allow_methods=tuple(m.upper() for m in strings("allowMethods")),
            expose_headers=tuple(h.lower() for h in strings("exposeHeaders")),
            allow_credentials=str(config.get("allowCredentials", False)).lower() == "true",
            max_age=int(max_age) if max_age is not None else None,
        )

    @staticmethod
    def _authorizers(body: dict, where: str, resolver: _Resolver) -> dict[str, JwtAuthorizer]:
        found = {}
        for name, scheme in ((body.get("components") or {}).get("securitySchemes") or {}).items():
            if name == "AWS_IAM":
                continue  # refused on the routes that use it
            config = scheme.get("x-amazon-apigateway-authorizer") or {}
            here = f"{where}.Properties.Auth.Authorizers.{name}"
            if config.get("type") != "jwt":
                raise TemplateError(f"{here}: only JWT authorizers are emulated locally")
            jwt_config = resolver.resolve(config.get("jwtConfiguration") or {}, f"{here}.JwtConfiguration")
            issuer, audience = jwt_config.get("issuer"), jwt_config.get("audience") or []
            if not isinstance(issuer, str) or not issuer:
                raise TemplateError(f"{here}: JwtConfiguration.issuer is required")
            source = resolver.resolve(config.get("identitySource", "$request.header.Authorization"),
                                      f"{here}.IdentitySource")
            sources = [s.strip() for s in (source.split(",") if isinstance(source, str) else source)]
            audiences = [audience] if isinstance(audience, str) else audience
            found[name] = JwtAuthorizer(name, issuer, tuple(str(a) for a in audiences), tuple(sources))
        return found


# ----------------------------------------------------------------------- resolver


class _Resolver:
    """Evaluates intrinsic functions against parameters, conditions and physical values."""

    def __init__(self, template: Template, physical: dict[str, Physical],
                 condition_stack: tuple[str, ...] = ()) -> None:
        self.t = template
        self.physical = physical
        self._condition_stack = condition_stack

    def resolve(self, value: Any, where: str = "") -> Any:
        if isinstance(value, dict):
            if len(value) == 1:
                key = next(iter(value))
                if key == "Ref" or key == "Condition" or key.startswith("Fn::"):
                    return self._intrinsic(key, value[key], where)
            resolved = {k: self.resolve(v, f"{where}.{k}") for k, v in value.items()}
            return {k: v for k, v in resolved.items() if v is not NO_VALUE}
        if isinstance(value, list):
            items = [self.resolve(v, f"{where}[{i}]") for i, v in enumerate(value)]
            return [v for v in items if v is not NO_VALUE]
        return value

    # Ref and GetAtt are also used directly by Template.
    def ref(self, name: Any, where: str) -> Any:
        if not isinstance(name, str):
            raise TemplateError(f"{where}: Ref needs a name")
        pseudo = self._pseudo(name)
        if pseudo is not None:
            return pseudo
        if name in self.t.parameters:
            return self.t.parameters[name]
        return self._physical(name, where).ref

    def getatt(self, name: str, attribute: str, where: str) -> str:
        physical = self._physical(name, where)
        if attribute not in physical.attrs:
            raise TemplateError(f"{where}: {name}.{attribute} is not available in the local stack")
        return physical.attrs[attribute]

    def _physical(self, name: str, where: str) -> Physical:
        if name in self.physical:
            return self.physical[name]
        if name in self.t.resources:
            return self.t.default_physical(name, self)
        if name in (self.t._data.get("Resources") or {}):
            raise TemplateError(f"{where}: {name} is not created (its Condition is false)")
        raise TemplateError(f"{where}: unknown resource or parameter {name!r}")

    def _pseudo(self, name: str) -> Any:
        return {
            "AWS::Region": self.t.region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": self.t.stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{self.t.region}:{ACCOUNT_ID}:stack/{self.t.stack_name}/local",
            "AWS::NotificationARNs": [],
            "AWS::NoValue": NO_VALUE,
        }.get(name)

    def _intrinsic(self, key: str, arg: Any, where: str) -> Any:
        here = f"{where} ({key})" if where else key
        if key == "Ref":
            return self.ref(arg, here)
        if key == "Condition":
            return self.t.condition(arg, self._condition_stack)
        if key == "Fn::GetAtt":
            if isinstance(arg, str):
                arg = arg.split(".", 1)
            arg = self.resolve(arg, here)
            if not (isinstance(arg, list) and len(arg) == 2 and all(isinstance(a, str) for a in arg)):
                raise TemplateError(f"{here}: expected [Resource, Attribute]")
            return self.getatt(arg[0], arg[1], here)
        if key == "Fn::Sub":
            return self._sub(arg, here)
        if key == "Fn::If":
            if not (isinstance(arg, list) and len(arg) == 3):
                raise TemplateError(f"{here}: expected [Condition, ValueIfTrue, ValueIfFalse]")
            return self.resolve(arg[1] if self.t.condition(arg[0], self._condition_stack) else arg[2], here)
        if key == "Fn::ImportValue":
            raise TemplateError(f"{here}: values exported by other stacks can't be imported locally")
        args = self.resolve(arg, here)
        try:
            return self._function(key, args, here)
        except (TypeError, ValueError, IndexError, KeyError, AttributeError):
            raise TemplateError(f"{here}: invalid arguments {args!r}") from None

    def _function(self, key: str, args: Any, here: str) -> Any:
        if key == "Fn::Join":
            delimiter, items = args
            return str(delimiter).join(_param_str(i) for i in items)
        if key == "Fn::Select":
            index, items = args
            return items[int(index)]
        if key == "Fn::Split":
            delimiter, text = args
            return text.split(delimiter)
        if key == "Fn::Equals":
            left, right = args
            return _param_str(left) == _param_str(right)
        if key == "Fn::Not":
            (value,) = args
            return not self._bool(value, here)
        if key == "Fn::And":
            return all(self._bool(v, here) for v in args)
        if key == "Fn::Or":
            return any(self._bool(v, here) for v in args)
        if key == "Fn::FindInMap":
            name, top, second = args[:3]
            return self.t.mappings[name][top][second]
        if key == "Fn::Base64":
            return base64.b64encode(str(args).encode()).decode()
        if key == "Fn::GetAZs":
            return [f"{self.t.region}{zone}" for zone in "abc"]
        raise TemplateError(f"{here}: {key} is not supported by the local stack")

    @staticmethod
    def _bool(value: Any, here: str) -> bool:
        if not isinstance(value, bool):
            raise TemplateError(f"{here}: expected a condition, got {value!r}")
        return value

    _SUB = re.compile(r"\$\{([^}]*)\}")

    def _sub(self, arg: Any, here: str) -> str:
        if isinstance(arg, list):
            if len(arg) != 2 or not isinstance(arg[0], str) or not isinstance(arg[1], dict):
                raise TemplateError(f"{here}: expected [String, {{Var: Value}}]")
            text, variables = arg[0], {k: self.resolve(v, f"{here}.{k}") for k, v in arg[1].items()}
        elif isinstance(arg, str):
            text, variables = arg, {}
        else:
            raise TemplateError(f"{here}: expected a string or [String, {{Var: Value}}]")

        def replace(match: re.Match) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"  # ${!Literal} escapes a literal ${Literal}
            name = name.strip()
            if name in variables:
                value = variables[name]
            elif "." in name and name.split(".", 1)[0] in self.t.resources:
                value = self.getatt(*name.split(".", 1), here)
            else:
                value = self.ref(name, here)
            if isinstance(value, (list, dict)) or value is NO_VALUE:
                raise TemplateError(f"{here}: ${{{name}}} is not a string")
            return _param_str(value)

        return self._SUB.sub(replace, text)
