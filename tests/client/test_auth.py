"""Token providers: JWT expiry, the shared refresh, and Cognito sign-in against moto."""

from __future__ import annotations

import asyncio

import boto3
import jwt as pyjwt
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from broadcast_client import (
    AuthenticationFailed,
    CognitoTokenProvider,
    NetworkUnavailable,
    StaticTokenProvider,
    TokenManager,
    jwt_expiry,
)
from moto import mock_aws

from tests.client.fakes import Clock, FakeTokens, async_test, jwt

REGION = "eu-west-1"
PASSWORD = "Alice-Local-Pass-1"


def test_jwt_expiry_reads_exp_without_verifying():
    assert jwt_expiry(jwt(exp=1_700_000_123)) == 1_700_000_123.0
    for not_a_jwt in ("opaque-token", "a.b", "a.!!!.c", jwt(exp=True), f"{jwt(1)[:-5]}.x.y"):
        assert jwt_expiry(not_a_jwt) is None


@async_test
async def test_concurrent_rejections_share_one_refresh():
    tokens = FakeTokens("old", "new")
    manager = TokenManager(tokens, clock=Clock())
    first = await manager.get()

    replacements = await asyncio.gather(*(manager.rejected(first) for _ in range(5)))

    assert tokens.refreshes == 1
    assert replacements == ["new"] * 5


@async_test
async def test_a_provider_that_cannot_refresh_gives_no_replacement():
    manager = TokenManager(StaticTokenProvider("fixed"))
    assert await manager.rejected(await manager.get()) is None


# ----------------------------------------------------------------- Cognito (moto)


@pytest.fixture
def user_pool():
    with mock_aws():
        idp = boto3.client("cognito-idp", region_name=REGION)
        pool_id = idp.create_user_pool(PoolName="test")["UserPool"]["Id"]
        client_id = idp.create_user_pool_client(
            UserPoolId=pool_id, ClientName="app", GenerateSecret=False,
            ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        )["UserPoolClient"]["ClientId"]
        idp.admin_create_user(UserPoolId=pool_id, Username="alice", MessageAction="SUPPRESS")
        idp.admin_set_user_password(UserPoolId=pool_id, Username="alice", Password=PASSWORD, Permanent=True)
        idp.admin_create_user(UserPoolId=pool_id, Username="newbie", TemporaryPassword="Temp-Pass-123!",
                              MessageAction="SUPPRESS")
        yield client_id


def record_flows(provider: CognitoTokenProvider) -> list[str]:
    flows: list[str] = []
    provider._client.meta.events.register(
        "provide-client-params.cognito-idp.InitiateAuth", lambda params, **_: flows.append(params["AuthFlow"]))
    return flows


@async_test
async def test_cognito_signs_in_then_refreshes_with_the_refresh_token(user_pool):
    provider = CognitoTokenProvider(user_pool, "alice", PASSWORD, region=REGION)
    flows = record_flows(provider)

    token = await provider.token()
    assert await provider.token() == token  # cached
    refreshed = await provider.refresh()

    assert flows == ["USER_PASSWORD_AUTH", "REFRESH_TOKEN_AUTH"]
    claims = pyjwt.decode(refreshed, options={"verify_signature": False})
    assert claims["token_use"] == "id" and claims["aud"] == user_pool
    assert jwt_expiry(token) is not None
    assert PASSWORD not in repr(provider)


@async_test
async def test_cognito_signs_in_again_when_the_refresh_token_is_refused(user_pool):
    provider = CognitoTokenProvider(user_pool, "alice", PASSWORD, region=REGION, token_use="access")
    flows = record_flows(provider)
    await provider.token()
    provider._refresh_token = "revoked"

    token = await provider.refresh()

    assert flows == ["USER_PASSWORD_AUTH", "REFRESH_TOKEN_AUTH", "USER_PASSWORD_AUTH"]
    assert pyjwt.decode(token, options={"verify_signature": False})["token_use"] == "access"


@async_test
async def test_a_wrong_password_is_authentication_failed(user_pool):
    provider = CognitoTokenProvider(user_pool, "alice", "Wrong-Pass-999", region=REGION)

    with pytest.raises(AuthenticationFailed) as caught:
        await provider.token()
    assert "alice" in str(caught.value) and "Wrong-Pass-999" not in str(caught.value)


@async_test
async def test_a_pending_challenge_is_explained(user_pool):
    provider = CognitoTokenProvider(user_pool, "newbie", "Temp-Pass-123!", region=REGION)

    with pytest.raises(AuthenticationFailed, match="NEW_PASSWORD_REQUIRED"):
        await provider.token()


@async_test
async def test_an_unreachable_cognito_is_network_unavailable():
    client = boto3.client("cognito-idp", region_name=REGION, endpoint_url="http://127.0.0.1:9",
                          config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1},
                                        connect_timeout=2))
    provider = CognitoTokenProvider("client", "alice", PASSWORD, region=REGION, client=client)

    with pytest.raises(NetworkUnavailable, match="Cannot reach Cognito"):
        await provider.token()
