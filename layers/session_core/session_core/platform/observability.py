"""One Logger and Metrics per execution environment, and a Tracer where tracing is on (on AWS).

Logs: JSON (Powertools), one line per record, with the correlation ID each
entry point chooses (API Gateway request ID, Step Functions execution name).
Nothing secret may reach a line: handlers never log events, bodies or headers,
and as a last line of defence every record is scrubbed of anything that looks
like a JWT or a long base64 run (audio) before it is written.

Metrics: CloudWatch EMF in the BroadcastSessions namespace
(POWERTOOLS_METRICS_NAMESPACE), every one with the `stage` dimension (and
Powertools' `service`). A metric with a further dimension (`api`, `reason`,
`function`) goes out as its own EMF record (`metric(..., reason=...)`).
Dimensions are low-cardinality by rule: API names, error codes, function
names; never session, connection or user IDs.
"""

from __future__ import annotations

import functools
import os
import re
import warnings

from aws_lambda_powertools import Logger, Metrics, Tracer, single_metric
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.shared.functions import resolve_truthy_env_var_choice

from .settings import stage

# Requests that emit no business metric are normal (GET, errors); the warning is noise.
warnings.filterwarnings("ignore", message="No application metrics to publish")

# A JWT's header and payload are base64url JSON objects, so both start with "eyJ".
JWT_PATTERN = re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]*")
# Audio arrives base64-encoded; no legitimate log value is a base64 run this long.
BASE64_RUN_PATTERN = re.compile(r"[A-Za-z0-9+/_-]{200,}={0,2}")


def redact(text: str) -> str:
    """`text` with tokens and audio-sized base64 runs replaced."""
    return BASE64_RUN_PATTERN.sub("[REDACTED]", JWT_PATTERN.sub("[REDACTED-TOKEN]", text))


class RedactingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter, scrubbing the finished line (message, extra keys, tracebacks)."""

    def serialize(self, log: dict) -> str:
        return redact(super().serialize(log))


def tracing_enabled() -> bool:
    """Powertools' own rule (Tracer._is_tracer_disabled): tracing is off when POWERTOOLS_TRACE_DISABLED is
    true, outside Lambda (no LAMBDA_TASK_ROOT) and under the SAM CLI (AWS_SAM_LOCAL). These are Powertools'
    and Lambda's own variables, read as Powertools reads them, so they are read here, not in settings."""
    disabled = resolve_truthy_env_var_choice(env=os.environ.get("POWERTOOLS_TRACE_DISABLED", "false"))
    return not disabled and bool(os.environ.get("LAMBDA_TASK_ROOT")) and os.environ.get("AWS_SAM_LOCAL") != "true"


logger = Logger(logger_formatter=RedactingFormatter())
metrics = Metrics()
metrics.set_default_dimensions(stage=stage())

__all__ = ["MetricUnit", "logger", "metric", "metrics", "observed", "redact", "tracer"]


@functools.cache
def tracer() -> Tracer | None:
    """The Powertools Tracer, made by the first traced entry point; None where tracing is off.

    Powertools' Tracer imports the X-Ray SDK even when tracing is off (and outside Lambda its recorder
    builds two botocore clients at import), so there is a Tracer only where it traces. It patches
    botocore alone -- the AWS calls are what a trace should show; patch_all would import the patcher of
    every library the SDK knows -- and only once botocore is imported (wrapt's post-import hook, at once
    if it already is): a function that calls no AWS service does not load botocore for its trace.
    The hook waits for botocore.session, which every client needs and which imports botocore.client
    first: botocore.client's own hook would run before the package has it as an attribute.
    """
    if not tracing_enabled():
        return None
    import wrapt  # the X-Ray SDK's own dependency

    traced = Tracer(auto_patch=False)
    wrapt.register_post_import_hook(lambda _: traced.patch(("botocore",)), "botocore.session")
    return traced


def metric(name: str, value: float = 1, unit: MetricUnit = MetricUnit.Count, **dimensions: str) -> None:
    """Records a business metric for this invocation.

    Without extra dimensions it joins the invocation's EMF record (flushed when
    the handler returns). With them (low-cardinality values only) it is written
    at once as its own record, carrying the default dimensions too, so the
    extra dimension never leaks onto the invocation's other metrics.
    """
    if not dimensions:
        metrics.add_metric(name=name, unit=unit, value=value)
        return
    with single_metric(name=name, unit=unit, value=value,
                       default_dimensions={**metrics.default_dimensions, **dimensions}):
        pass


def observed(correlation_id_path: str | None = None, *, traced: bool = True):
    """The Lambda entry point's wrapper: logger context with the correlation ID,
    X-Ray tracing, the invocation's metrics flushed at the end, a ColdStart
    metric on the first invocation of an execution environment, and a
    structured error record for any exception that escapes the handler.

    traced=False: no Powertools Tracer (nor the X-Ray SDK) for an entry point
    that calls no AWS service; Lambda's active tracing still records its
    invocation and its init."""

    def decorate(handler):
        # Lambda's own variable: how this execution environment was started.
        cold = os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") != "provisioned-concurrency"

        @functools.wraps(handler)
        def invoke(event, context):
            nonlocal cold
            if cold:
                cold = False
                metric("ColdStart", function=getattr(context, "function_name", "") or "unknown")
            try:
                return handler(event, context)
            except Exception as exc:
                # An exception a handler raises on purpose (the authorizer's
                # "Unauthorized") is marked as logged already.
                if not getattr(exc, "logged", False):
                    logger.exception("invocation failed", extra={"errorType": type(exc).__name__})
                raise

        wrapped = metrics.log_metrics(invoke)
        traced_by = tracer() if traced else None
        if traced_by is not None:
            wrapped = traced_by.capture_lambda_handler(wrapped)
        # clear_state: keys a previous invocation appended (connectionId, sessionId) never carry over.
        wrapped = logger.inject_lambda_context(wrapped, correlation_id_path=correlation_id_path, clear_state=True)
        wrapped.observed = True  # tests check that every function's entry point is
        return wrapped

    return decorate
