"""The console's own server: the pages, and config.json describing the running stack."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import httpx

from local_stack.console import ConsoleServer

from .conftest import MAX_LISTENERS


def test_make_dev_serves_the_console_and_its_configuration(console_stack):
    stack = console_stack
    assert f"Console   {stack['consoleUrl']}" in stack.output()  # the startup banner
    config = httpx.get(stack["consoleUrl"] + "config.json")
    assert config.status_code == 200
    assert config.headers["Cache-Control"] == "no-store"
    assert config.json() == {
        "httpApiUrl": stack["httpApiUrl"], "webSocketUrl": stack["webSocketUrl"], "region": stack["region"],
        "userPoolId": stack["userPoolId"], "userPoolClientId": stack["userPoolClientId"],
        "cognitoEndpoint": stack["awsEndpointUrl"], "allowAnonymousListeners": True,
        "localUsers": [stack.user("alice")["username"], stack.user("bob")["username"]],
    }
    for page in ("", "speaker.html", "listener.html", "pcm-capture.js"):
        assert httpx.get(stack["consoleUrl"] + page).status_code == 200, page
    assert MAX_LISTENERS == int(stack["parameterOverrides"]["MaxListenersPerSession"])


def test_the_pages_reach_the_http_api_and_cognito_from_their_origin(console_stack):
    """CORS: the browser calls both directly from the console's origin; nothing is proxied."""
    origin = console_stack["consoleUrl"].rstrip("/")
    api = httpx.options(f"{console_stack.url}/sessions", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,idempotency-key"})
    assert api.headers.get("Access-Control-Allow-Origin") in ("*", origin)
    cognito = httpx.options(console_stack["awsEndpointUrl"], headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-amz-target"})
    assert cognito.headers.get("Access-Control-Allow-Origin") in ("*", origin)


def _serve(root, *paths: str) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        server = ConsoleServer(lambda: {"httpApiUrl": "http://x"}, root=root, port=0)
        await server.start()
        try:
            async with httpx.AsyncClient(base_url=server.url) as client:
                return [await client.get(path) for path in paths]
        finally:
            await server.stop()

    # A thread of its own: Playwright's sync API keeps an event loop running in this one.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()


def test_an_unbuilt_console_says_how_to_build_it(tmp_path):
    page, config = _serve(tmp_path / "missing", "/", "/config.json")
    assert page.status_code == 503
    assert "make console" in page.text
    assert config.json() == {"httpApiUrl": "http://x"}


def test_only_files_of_the_console_are_served(tmp_path):
    root = tmp_path / "console"
    root.mkdir()
    (root / "index.html").write_text("<p>console</p>")
    (tmp_path / "secret.txt").write_text("not for the browser")
    index, outside, encoded, missing = _serve(root, "/", "/../secret.txt", "/%2e%2e/secret.txt", "/nope.html")
    assert index.text == "<p>console</p>"
    assert [outside.status_code, encoded.status_code, missing.status_code] == [404, 404, 404]
