import pytest

from tests.support.lambdas import new_execution_environment


@pytest.fixture(autouse=True)
def execution_environment():
    """Each unit test starts and ends with a new execution environment: settings and AWS clients it builds
    under its own environment variables (a client aimed at AWS itself, say) never reach a later test."""
    new_execution_environment()
    yield
    new_execution_environment()
