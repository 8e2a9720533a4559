"""Settings every test shares: a fake AWS identity, so nothing can reach AWS."""

import os

os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION="eu-west-1",
    AWS_REGION="eu-west-1",
    POWERTOOLS_SERVICE_NAME="session-service",
    POWERTOOLS_METRICS_NAMESPACE="BroadcastSessions",
    POWERTOOLS_TRACE_DISABLED="true",
    STAGE_NAME="test",
)
os.environ.pop("AWS_PROFILE", None)
