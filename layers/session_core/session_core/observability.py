"""One Logger, Tracer and Metrics per execution environment.

Service name and metric namespace come from POWERTOOLS_SERVICE_NAME and
POWERTOOLS_METRICS_NAMESPACE (template Globals); every metric carries the
stage as a dimension.
"""

from __future__ import annotations

import os
import warnings

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

# Requests that emit no business metric are normal (GET, errors); the warning is noise.
warnings.filterwarnings("ignore", message="No application metrics to publish")

logger = Logger()
tracer = Tracer()
metrics = Metrics()
metrics.set_default_dimensions(stage=os.environ.get("STAGE_NAME", "dev"))

__all__ = ["logger", "tracer", "metrics", "MetricUnit"]


def observed(correlation_id_path: str | None = None):
    """Logger context (with correlation ID), tracing and metrics flushing for a Lambda entry point."""

    def decorate(handler):
        handler = metrics.log_metrics(handler, capture_cold_start_metric=True)
        handler = tracer.capture_lambda_handler(handler)
        return logger.inject_lambda_context(handler, correlation_id_path=correlation_id_path)

    return decorate
