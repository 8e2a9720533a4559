"""IAM as AWS applies it to the functions: each function's role as SAM expands it
(inline statements, SAM policy templates, the managed policies SAM attaches),
and the allow/deny decision AWS makes on every call the function signs.

A function signs its calls with an access key naming it (``access_key_for``);
the local AWS endpoint and the Management API look the key up and refuse what
the role does not allow with AccessDenied, as AWS does. Keys that name no
function are the developer's own (tests, the CLI, moto's Step Functions
interpreter) and are not checked, like an administrator's in the account.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .template import ACCOUNT_ID, SERVERLESS_FUNCTION, Physical, Template, TemplateError

log = logging.getLogger("local_stack")

# The AWS managed policies SAM attaches to function roles, as AWS publishes them.
# A role naming any other managed policy is refused at start: its grants are unknown here.
MANAGED_POLICIES: dict[str, list[dict]] = {
    "service-role/AWSLambdaBasicExecutionRole": [
        {"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": "*"}],
    "AWSXrayWriteOnlyAccess": [
        {"Effect": "Allow", "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords",
                                       "xray:GetSamplingRules", "xray:GetSamplingTargets",
                                       "xray:GetSamplingStatisticSummaries"], "Resource": "*"}],
    "service-role/AWSLambdaDynamoDBExecutionRole": [
        {"Effect": "Allow", "Action": ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator",
                                       "dynamodb:ListStreams", "logs:CreateLogGroup", "logs:CreateLogStream",
                                       "logs:PutLogEvents"], "Resource": "*"}],
}
_MANAGED_ARN = re.compile(r"^arn:aws[\w-]*:iam::aws:policy/(.+)$")


def access_key_for(logical_id: str) -> str:
    """The access key a function signs with locally (stable, shaped like a temporary key)."""
    return "ASIA" + hashlib.sha1(logical_id.encode()).hexdigest()[:16].upper()


def _pattern(text: str, *, ignore_case: bool) -> re.Pattern:
    # IAM wildcards: * any run of characters, ? one character; nothing else is special.
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text)
    return re.compile(f"^{body}$", re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    return tuple(str(v) for v in (value if isinstance(value, list) else [value]))


@dataclass(frozen=True)
class Statement:
    effect: str
    actions: tuple[re.Pattern, ...]
    not_actions: tuple[re.Pattern, ...]
    resources: tuple[re.Pattern, ...]
    not_resources: tuple[re.Pattern, ...]
    conditional: bool

    @classmethod
    def parse(cls, raw: dict, where: str) -> Statement:
        if not isinstance(raw, dict) or raw.get("Effect") not in ("Allow", "Deny"):
            raise TemplateError(f"{where}: a statement needs Effect Allow or Deny")
        return cls(
            effect=raw["Effect"],
            actions=tuple(_pattern(a, ignore_case=True) for a in _strings(raw.get("Action"))),
            not_actions=tuple(_pattern(a, ignore_case=True) for a in _strings(raw.get("NotAction"))),
            resources=tuple(_pattern(r, ignore_case=False) for r in _strings(raw.get("Resource"))),
            not_resources=tuple(_pattern(r, ignore_case=False) for r in _strings(raw.get("NotResource"))),
            conditional=bool(raw.get("Condition")),
        )

    def covers(self, action: str, resource: str) -> bool:
        if self.actions:
            if not any(p.match(action) for p in self.actions):
                return False
        elif not self.not_actions or any(p.match(action) for p in self.not_actions):
            return False
        if self.resources:
            return any(p.match(resource) for p in self.resources)
        return bool(self.not_resources) and not any(p.match(resource) for p in self.not_resources)


@dataclass(frozen=True)
class Role:
    """One function's execution role."""

    function: str  # logical id
    function_name: str
    role_name: str
    statements: tuple[Statement, ...]

    def allows(self, action: str, resource: str) -> bool:
        # An explicit Deny wins; otherwise some Allow must cover the request. A condition can't be
        # evaluated here, so a conditional Allow never grants and a conditional Deny always applies.
        allowed = False
        for statement in self.statements:
            if not statement.covers(action, resource):
                continue
            if statement.effect == "Deny":
                return False
            allowed = allowed or not statement.conditional
        return allowed

    def denial(self, action: str, resource: str) -> str:
        return (f"User: arn:aws:sts::{ACCOUNT_ID}:assumed-role/{self.role_name}/{self.function_name} is not "
                f"authorized to perform: {action} on resource: {resource} because no identity-based policy "
                f"allows the {action} action")


def function_roles(template: Template, physical: dict[str, Physical]) -> dict[str, Role]:
    """function logical id -> its role as the SAM transform expands it, with every intrinsic resolved
    against the local resources."""
    resources = template.expanded["Resources"]
    resolver = template.resolver(physical)
    roles = {}
    for logical_id in template.resources_of_type(SERVERLESS_FUNCTION):
        role_ref = (resources.get(logical_id, {}).get("Properties") or {}).get("Role")
        role_id = role_ref.get("Fn::GetAtt", [None])[0] if isinstance(role_ref, dict) else None
        role = resources.get(role_id or "", {})
        if role.get("Type") != "AWS::IAM::Role":
            raise TemplateError(f"{logical_id}: the local stack needs its role in the template (got {role_ref!r})")
        props = role.get("Properties") or {}
        statements: list[Statement] = []
        for index, policy in enumerate(props.get("Policies") or []):
            document = resolver.resolve(policy.get("PolicyDocument") or {}, f"{role_id}.Policies[{index}]")
            statements += [Statement.parse(s, f"{role_id}.Policies[{index}]")
                           for s in _as_list(document.get("Statement"))]
        for arn in resolver.resolve(props.get("ManagedPolicyArns") or [], f"{role_id}.ManagedPolicyArns"):
            match = _MANAGED_ARN.match(str(arn))
            if not match or match.group(1) not in MANAGED_POLICIES:
                raise TemplateError(f"{logical_id}: managed policy {arn} is unknown to the local stack; "
                                    f"add its document to MANAGED_POLICIES in local_stack/iam.py")
            statements += [Statement.parse(s, str(arn)) for s in MANAGED_POLICIES[match.group(1)]]
        function_name = resolver.ref(logical_id, logical_id)
        roles[logical_id] = Role(logical_id, str(function_name), f"{template.stack_name}-{role_id}",
                                 tuple(statements))
    return roles


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value] if value else []


class Iam:
    """The decision for one signed request. ``enforce=False`` keeps the roles but allows everything."""

    def __init__(self, roles: dict[str, Role], *, enforce: bool = True) -> None:
        self.enforce = enforce
        self.roles = roles  # function logical id -> its role
        self._by_key = {access_key_for(lid): role for lid, role in roles.items()}

    def role_of(self, headers: Any, query: Any = None) -> Role | None:
        """The function whose key signed the request (SigV4 Authorization header, or a presigned URL's
        X-Amz-Credential), or None."""
        match = _CREDENTIAL.search(headers.get("Authorization", ""))
        if match:
            return self._by_key.get(match.group(1))
        presigned = (query or {}).get("X-Amz-Credential", "")
        return self._by_key.get(presigned.split("/", 1)[0]) if presigned else None

    def signer(self, headers: Any, query: Any = None) -> Role | None:
        """The role IAM holds this request to: its signing function's, or None (not enforced, not a function)."""
        return self.role_of(headers, query) if self.enforce else None

    def denial(self, headers: Any, requests: list[tuple[str, str]], query: Any = None) -> str | None:
        """The AccessDenied message for the first (action, resource) the signer may not do, or None."""
        role = self.signer(headers, query)
        if role is None:
            return None
        for action, resource in requests:
            if not role.allows(action, resource):
                log.info("AccessDenied: %s may not %s on %s", role.function, action, resource)
                return role.denial(action, resource)
        return None


_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")


# ------------------------------------------------------------ what a request asks for

# JSON-protocol target prefixes -> IAM service prefix.
_TARGETS = {
    "DynamoDB_20120810": "dynamodb", "DynamoDBStreams_20120810": "dynamodb", "Kinesis_20131202": "kinesis",
    "AWSStepFunctions": "states", "AmazonSQS": "sqs", "AWSCognitoIdentityProviderService": "cognito-idp",
    "GraniteServiceVersion20100801": "cloudwatch", "Logs_20140328": "logs",
}
# Transactions have no IAM action of their own: each item needs its own write action.
_TRANSACT_ACTIONS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                     "ConditionCheck": "ConditionCheckItem"}


def operation_of(headers: Any, path: str, body: bytes, method: str = "POST",
                 query: Any = None) -> tuple[str, str] | None:
    """(IAM service prefix, operation name) of an AWS API request, or None if it is not one we can read."""
    s3 = _s3_operation(headers, path, method, query or {})
    if s3:
        return "s3", s3
    target = headers.get("X-Amz-Target", "")
    if "." in target:
        prefix, operation = target.rsplit(".", 1)
        service = _TARGETS.get(prefix)
        return (service, operation) if service else None
    if invoked_function(path) is not None:
        return "lambda", "InvokeFunction"
    rpc = re.match(r"^/service/(\w+)/operation/(\w+)$", path)  # the Smithy RPC v2 protocol (CloudWatch)
    if rpc and rpc.group(1) in _TARGETS:
        return _TARGETS[rpc.group(1)], rpc.group(2)
    if headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
        action = parse_qs(body.decode(errors="replace")).get("Action", [""])[0]
        scope = _SCOPE.search(headers.get("Authorization", ""))
        if action and scope:
            return {"monitoring": "cloudwatch"}.get(scope.group(1), scope.group(1)), action
    return None


_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/")
# The S3 object operations the functions make, by method (path-style requests: the local endpoint is an address).
_S3_OBJECT = {"PUT": "PutObject", "GET": "GetObject", "HEAD": "GetObject", "DELETE": "DeleteObject"}


def _s3_operation(headers: Any, path: str, method: str, query: Any) -> str | None:
    """An S3 request's operation, told by its signature's scope (header or presigned URL): object requests only;
    other S3 requests are read as "S3Request" (a role grants no such action, so they are refused)."""
    scope = _SCOPE.search(headers.get("Authorization", "")) or _SCOPE.search(
        "Credential=" + query.get("X-Amz-Credential", ""))
    if not scope or scope.group(1) != "s3":
        return None
    bucket_and_key = path.lstrip("/").split("?", 1)[0].split("/", 1)
    if len(bucket_and_key) == 2 and bucket_and_key[1] and not (set(query) & {"uploads", "uploadId", "acl", "tagging"}):
        return _S3_OBJECT.get(method.upper(), "S3Request")
    return "S3Request"
_INVOKE = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations$")


def invoked_function(path: str) -> str | None:
    """The function name or ARN a Lambda Invoke request's path names, or None if it is no Invoke."""
    match = _INVOKE.match(path)
    return unquote(match.group(1)) if match else None


def _table_arn(region: str, name: str) -> str:
    return name if name.startswith("arn:") else f"arn:aws:dynamodb:{region}:{ACCOUNT_ID}:table/{name}"


def request_payload(headers: Any, body: bytes) -> dict:
    """A request's parameters, read once: its JSON body, or a form body's fields (the query protocol)."""
    if headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
        return {name: values[0] for name, values in parse_qs(body.decode(errors="replace")).items()}
    try:
        payload = json.loads(body) if body and body.lstrip()[:1] == b"{" else {}
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def requests_of(service: str, operation: str, path: str, payload: dict, region: str) -> list[tuple[str, str]]:
    """The (action, resource ARN) pairs IAM authorizes for one request (payload: request_payload's)."""
    if service == "dynamodb":
        return _dynamodb(operation, payload, region)
    if service == "kinesis":
        stream = payload.get("StreamARN") or (
            f"arn:aws:kinesis:{region}:{ACCOUNT_ID}:stream/{payload['StreamName']}" if "StreamName" in payload else "*")
        return [(f"kinesis:{operation}", stream)]
    if service == "states":
        resource = payload.get("stateMachineArn") or payload.get("executionArn") or "*"
        return [(f"states:{operation}", resource)]
    if service == "sqs":
        url = payload.get("QueueUrl", "")
        name = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1] if url else ""
        return [(f"sqs:{operation}", f"arn:aws:sqs:{region}:{ACCOUNT_ID}:{name}" if name else "*")]
    if service == "lambda":
        name = invoked_function(path) or ""
        arn = name if name.startswith("arn:") else f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{name}"
        return [("lambda:InvokeFunction", arn)]
    if service == "s3":
        return [(f"s3:{operation}", f"arn:aws:s3:::{unquote(path.lstrip('/').split('?', 1)[0])}")]
    if service == "cognito-idp" and "UserPoolId" in payload:
        return [(f"cognito-idp:{operation}",
                 f"arn:aws:cognito-idp:{region}:{ACCOUNT_ID}:userpool/{payload['UserPoolId']}")]
    return [(f"{service}:{operation}", "*")]


def _dynamodb(operation: str, payload: dict, region: str) -> list[tuple[str, str]]:
    if operation == "TransactWriteItems":
        return [(f"dynamodb:{_TRANSACT_ACTIONS.get(kind, kind)}", _table_arn(region, op.get("TableName", "")))
                for entry in payload.get("TransactItems") or [] for kind, op in entry.items()]
    if operation == "TransactGetItems":
        return [("dynamodb:GetItem", _table_arn(region, entry.get("Get", {}).get("TableName", "")))
                for entry in payload.get("TransactItems") or []]
    if operation in ("BatchWriteItem", "BatchGetItem"):
        return [(f"dynamodb:{operation}", _table_arn(region, table)) for table in payload.get("RequestItems") or {}]
    if "StreamArn" in payload:
        return [(f"dynamodb:{operation}", payload["StreamArn"])]
    if "TableName" in payload:
        arn = _table_arn(region, payload["TableName"])
        if payload.get("IndexName"):
            arn += f"/index/{payload['IndexName']}"
        return [(f"dynamodb:{operation}", arn)]
    return [(f"dynamodb:{operation}", "*")]
