"""The one way the local stack's servers listen: a free port on request, a clean stop, and a clear error
naming the option to change when the port is taken."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest
from aiohttp import web

from local_stack.console import ConsoleServer
from local_stack.serving import Listener
from local_stack.stack import LocalStack, StackConfig, StackError


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="hello")


def test_a_listener_on_port_0_serves_on_a_free_port_until_stopped():
    async def main():
        app = web.Application()
        app.router.add_get("/", hello)
        listener = Listener("127.0.0.1", 0, shutdown_timeout=1.0)
        port = await listener.start(app)
        assert port and listener.port == port
        async with aiohttp.ClientSession() as client:
            async with client.get(f"http://127.0.0.1:{port}/") as response:
                assert await response.text() == "hello"
            await listener.stop()
            with pytest.raises(aiohttp.ClientConnectorError):
                await client.get(f"http://127.0.0.1:{port}/")
        await listener.stop()  # a second stop is harmless

    asyncio.run(main())


def test_a_taken_port_stops_the_stack_naming_the_option(tmp_path):
    async def main(busy_port: int):
        stack = LocalStack(StackConfig(state_dir=tmp_path))
        console = ConsoleServer(dict, root=tmp_path, port=busy_port)
        with pytest.raises(StackError, match=rf"cannot serve the console on 127\.0\.0\.1:{busy_port}: .*"
                                             r"\(choose another --console-port\)"):
            await stack._serve(console, "the console", busy_port, "--console-port")
        await stack.stop()  # the failed server's stop was registered: nothing is left running

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        asyncio.run(main(taken.getsockname()[1]))
