"""Settings every test shares: a fake AWS identity, so nothing can reach AWS; the `runs_last` marker."""

import os

import pytest

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


def pytest_configure(config):
    config.addinivalue_line("markers", "runs_last(why): runs after every other test of the run (it reads what they "
                                       "left behind), whatever its file's name")


@pytest.hookimpl(trylast=True)  # after any other plugin's reordering
def pytest_collection_modifyitems(items):
    # A stable sort: the marked tests keep their own order, after all the others.
    items.sort(key=lambda item: item.get_closest_marker("runs_last") is not None)
