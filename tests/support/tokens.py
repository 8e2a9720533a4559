"""Forged and well-formed Cognito-like tokens for attack and unit tests."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_TESTPOOL"
CLIENT_ID = "testclientid0123456789"


class KeyPair:
    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_pem = self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def jwk(self) -> dict:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key()))
        return {**jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}

    def sign(self, claims: dict, headers: dict | None = None) -> str:
        return jwt.encode(claims, self.private, algorithm="RS256", headers={"kid": self.kid, **(headers or {})})


def claims(token_use: str = "id", sub: str = "user-1", issuer: str = ISSUER, client_id: str = CLIENT_ID,
           lifetime: int = 3600, **extra) -> dict:
    now = int(time.time())
    base = {"sub": sub, "iss": issuer, "token_use": token_use, "iat": now, "exp": now + lifetime}
    base["aud" if token_use == "id" else "client_id"] = client_id
    return {**base, **extra}


def b64json(obj: dict) -> str:
    """One part of a JWT: base64url JSON, unpadded."""
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def unsigned(claims_: dict) -> str:
    """An `alg: none` token."""
    return f"{b64json({'alg': 'none', 'typ': 'JWT'})}.{b64json(claims_)}."


def hs256_with_public_key(key: KeyPair, claims_: dict) -> str:
    """The classic key-confusion attack: HMAC keyed with the RSA public key."""
    header = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
    import hashlib
    import hmac
    signing_input = f"{b64json(header)}.{b64json(claims_)}".encode()
    signature = base64.urlsafe_b64encode(hmac.new(key.public_pem, signing_input, hashlib.sha256).digest()).rstrip(b"=")
    return (signing_input + b"." + signature).decode()


def tampered(token: str) -> str:
    """Same header and claims, signature of other claims."""
    header, payload, signature = token.split(".")
    flipped = signature[:-4] + ("AAAA" if signature[-4:] != "AAAA" else "BBBB")
    return f"{header}.{payload}.{flipped}"


@contextlib.contextmanager
def serving_jwks(keys: list[dict], path: str = "/jwks.json") -> Iterator[str]:
    """A JWKS document served over real HTTP (as a user pool serves its keys); yields its URL."""
    body = json.dumps({"keys": keys}).encode()

    class Jwks(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}{path}"
    finally:
        server.shutdown()


# How a JWKS endpoint fails: an HTTP 500, a 200 that is not JSON (a proxy's error page), or no answer at all.
JWKS_FAILURES = ("500", "not-json", "hanging")


@contextlib.contextmanager
def failing_jwks(failure: str, path: str = "/jwks.json") -> Iterator[str]:
    """A JWKS endpoint over real HTTP that fails as `failure` says (one of JWKS_FAILURES); yields its URL.
    "hanging" holds each request until the server stops (past any client timeout)."""
    stopping = threading.Event()

    class Failing(BaseHTTPRequestHandler):
        def do_GET(self):
            if failure == "hanging":
                stopping.wait(30)
                return
            status, body = (500, b"{}") if failure == "500" else (200, b"<html>Service Unavailable</html>")
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if status == 500 else "text/html")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}{path}"
    finally:
        stopping.set()
        server.shutdown()
        server.server_close()
