"""Embedded AWS: moto in its own process, tables and Cognito created from template properties."""

import asyncio
from pathlib import Path
from textwrap import dedent

import jwt
import pytest

from local_stack import aws
from local_stack.template import Template, load_yaml

TEMPLATE = """
Parameters:
  MinLength:
    Type: Number
    Default: 12
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions:
        - {AttributeName: pk, AttributeType: S}
        - {AttributeName: sk, AttributeType: S}
        - {AttributeName: gsi1pk, AttributeType: S}
        - {AttributeName: lsi1sk, AttributeType: N}
      KeySchema: [{AttributeName: pk, KeyType: HASH}, {AttributeName: sk, KeyType: RANGE}]
      GlobalSecondaryIndexes:
        - IndexName: byOwner
          KeySchema: [{AttributeName: gsi1pk, KeyType: HASH}]
          Projection: {ProjectionType: ALL}
      LocalSecondaryIndexes:
        - IndexName: byTime
          KeySchema: [{AttributeName: pk, KeyType: HASH}, {AttributeName: lsi1sk, KeyType: RANGE}]
          Projection: {ProjectionType: KEYS_ONLY}
      StreamSpecification: {StreamViewType: NEW_AND_OLD_IMAGES}
      SSESpecification: {SSEEnabled: true}
      TimeToLiveSpecification: {AttributeName: expiresAt, Enabled: true}
      PointInTimeRecoverySpecification: {PointInTimeRecoveryEnabled: true}
  Chunks:
    Type: AWS::S3::Bucket
    Properties:
      BucketEncryption: {ServerSideEncryptionConfiguration: [{ServerSideEncryptionByDefault: {SSEAlgorithm: AES256}}]}
      LifecycleConfiguration: {Rules: [{Id: Expire, Status: Enabled, ExpirationInDays: 1}]}
      CorsConfiguration: {CorsRules: [{AllowedMethods: [GET], AllowedOrigins: ["*"], MaxAge: 600}]}
  Named:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Sub "${AWS::StackName}-explicit"
      AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
      KeySchema: [{AttributeName: id, KeyType: HASH}]
      ProvisionedThroughput: {ReadCapacityUnits: "5", WriteCapacityUnits: 5}
  Pool:
    Type: AWS::Cognito::UserPool
    Properties:
      UserPoolName: !Sub ${AWS::StackName}-users
      UsernameAttributes: [email]
      AutoVerifiedAttributes: [email]
      Policies:
        PasswordPolicy: {MinimumLength: !Ref MinLength, RequireUppercase: true, RequireNumbers: true}
  PoolClient:
    Type: AWS::Cognito::UserPoolClient
    Properties:
      UserPoolId: !Ref Pool
      GenerateSecret: false
      ExplicitAuthFlows: [ALLOW_USER_PASSWORD_AUTH, ALLOW_REFRESH_TOKEN_AUTH]
"""


@pytest.fixture(scope="module")
def provisioned():
    template = Template(load_yaml(dedent(TEMPLATE)), Path("."))
    loop = asyncio.new_event_loop()  # one loop owns the moto subprocess from start to stop
    moto = aws.MotoProcess(0)
    loop.run_until_complete(moto.start())
    try:
        yield template, moto.endpoint, aws.provision(template, moto.endpoint)
    finally:
        loop.run_until_complete(moto.stop())
        loop.close()


def test_tables_are_created_from_their_properties(provisioned):
    template, endpoint, result = provisioned
    assert result.tables == {"Table": "local-Table", "Named": "local-explicit"}
    ddb = aws.client("dynamodb", endpoint, template.region)
    table = ddb.describe_table(TableName="local-Table")["Table"]
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"},
                                  {"AttributeName": "sk", "KeyType": "RANGE"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == ["byOwner"]
    assert [i["IndexName"] for i in table["LocalSecondaryIndexes"]] == ["byTime"]
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    ttl = ddb.describe_time_to_live(TableName="local-Table")["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expiresAt"}
    assert result.physical["Table"].attrs["Arn"] == table["TableArn"]
    assert result.physical["Table"].attrs["StreamArn"] == table["LatestStreamArn"]
    named = ddb.describe_table(TableName="local-explicit")["Table"]
    assert named["ProvisionedThroughput"]["ReadCapacityUnits"] == 5


def test_users_sign_in_and_tokens_match_the_template_issuer(provisioned):
    template, endpoint, result = provisioned
    assert [u.name for u in result.users] == ["alice", "bob"]
    alice = result.users[0]
    assert alice.username == "alice@example.com"  # the pool signs in by email
    tokens = aws.initiate_auth(endpoint, template.region, result.user_pool_client_id, alice.username, alice.password)
    claims = jwt.decode(tokens["IdToken"], options={"verify_signature": False})
    assert claims["iss"] == aws.cognito_issuer(template.region, result.user_pool_id)
    assert claims["aud"] == result.user_pool_client_id and claims["email"] == alice.email
    access = jwt.decode(tokens["AccessToken"], options={"verify_signature": False})
    assert access["client_id"] == result.user_pool_client_id and access["token_use"] == "access"

    from local_stack.jwt_authorizer import JwtVerifier  # the HTTP API's authorizer, on moto's keys
    verifier = JwtVerifier(claims["iss"], [result.user_pool_client_id], aws.jwks_url(endpoint, result.user_pool_id))
    assert verifier.verify(tokens["IdToken"])["sub"] == verifier.verify(tokens["AccessToken"])["sub"]
    assert aws.local_jwks_url(claims["iss"], endpoint, template.region, [result.user_pool_id]) == \
        aws.jwks_url(endpoint, result.user_pool_id)


def test_pool_and_client_settings_come_from_the_template(provisioned):
    template, endpoint, result = provisioned
    idp = aws.client("cognito-idp", endpoint, template.region)
    pool = idp.describe_user_pool(UserPoolId=result.user_pool_id)["UserPool"]
    assert pool["Name"] == "local-users"
    assert pool["Policies"]["PasswordPolicy"]["MinimumLength"] == 12
    client = idp.describe_user_pool_client(UserPoolId=result.user_pool_id,
                                           ClientId=result.user_pool_client_id)["UserPoolClient"]
    assert set(client["ExplicitAuthFlows"]) == {"ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"}


def test_a_busy_port_is_a_clear_error(provisioned):
    _, endpoint, _ = provisioned
    busy = aws.MotoProcess(int(endpoint.rsplit(":", 1)[1]))
    with pytest.raises(aws.AwsError, match="cannot listen"):
        asyncio.run(busy.start())


def test_buckets_are_created_with_their_encryption_lifecycle_and_cors(provisioned):
    template, endpoint, result = provisioned
    assert result.buckets == {"Chunks": "local-chunks"}
    assert result.physical["Chunks"].attrs["Arn"] == "arn:aws:s3:::local-chunks"
    s3 = aws.client("s3", endpoint, template.region)
    rule = s3.get_bucket_encryption(Bucket="local-chunks")["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    (expiry,) = s3.get_bucket_lifecycle_configuration(Bucket="local-chunks")["Rules"]
    assert expiry["Expiration"] == {"Days": 1} and expiry["Status"] == "Enabled"
    (cors,) = s3.get_bucket_cors(Bucket="local-chunks")["CORSRules"]
    assert cors["AllowedMethods"] == ["GET"] and cors["MaxAgeSeconds"] == 600
