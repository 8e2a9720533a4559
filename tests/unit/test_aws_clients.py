"""The AWS clients hold a connection for every thread that posts through them."""

from session_core.platform import aws, management
from session_core.usecases import broadcast, teardown


def test_the_widest_fan_out_never_waits_for_a_pooled_connection(monkeypatch):
    monkeypatch.setenv("TABLE_NAME", "sessions")
    monkeypatch.setenv("WEBSOCKET_MANAGEMENT_URL", "https://example.execute-api.eu-west-1.amazonaws.com/test")
    widest = max(broadcast.POST_THREADS, teardown.POST_THREADS)
    assert management._client().meta.config.max_pool_connections >= widest
    assert aws.client("dynamodb").meta.config.max_pool_connections >= widest


def test_a_client_is_made_without_listing_every_service_botocore_has(monkeypatch):
    # botocore checks a service's name against the list of all ≈ 450 it has, made by listing every service
    # folder (≈ 0.06x of a cold start); the loader looks in the named service's folder only.
    import os

    from botocore import BOTOCORE_ROOT

    data = os.path.join(BOTOCORE_ROOT, "data")
    listed = []
    real_listdir = os.listdir
    monkeypatch.setattr(os, "listdir", lambda path=".": listed.append(os.fspath(path)) or real_listdir(path))
    aws.session.cache_clear()
    try:
        made = aws.session().create_client("kinesis", region_name="eu-west-1")
        assert made.meta.service_model.service_name == "kinesis"
        assert data not in listed
        assert os.path.join(data, "kinesis") in listed
    finally:
        aws.session.cache_clear()


def test_the_loader_still_knows_exactly_the_services_botocore_knows():
    import pytest
    from botocore.exceptions import UnknownServiceError
    from botocore.loaders import Loader

    aws.session.cache_clear()
    try:
        loader = aws.session().get_component("data_loader")
        every = Loader.list_available_services(loader, "endpoint-rule-set-1")
        assert len(every) > 300
        known = loader.list_available_services("endpoint-rule-set-1")
        assert set(known) == set(every)
        assert all(name in known for name in ("dynamodb", "kinesis", "stepfunctions", "apigatewaymanagementapi"))
        assert "dynamodbx" not in known and None not in known
        with pytest.raises(UnknownServiceError, match="Unknown service: 'dynamodbx'. Valid service names are: .*kinesis"):
            aws.session().create_client("dynamodbx", region_name="eu-west-1")
    finally:
        aws.session.cache_clear()
