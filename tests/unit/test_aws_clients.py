"""The AWS clients hold a connection for every thread that posts through them."""

from session_core.platform import aws, management
from session_core.usecases import broadcast, teardown


def test_the_widest_fan_out_never_waits_for_a_pooled_connection(monkeypatch):
    monkeypatch.setenv("TABLE_NAME", "sessions")
    monkeypatch.setenv("WEBSOCKET_MANAGEMENT_URL", "https://example.execute-api.eu-west-1.amazonaws.com/test")
    widest = max(broadcast.POST_THREADS, teardown.POST_THREADS)
    assert management._client().meta.config.max_pool_connections >= widest
    assert aws.client("dynamodb").meta.config.max_pool_connections >= widest
