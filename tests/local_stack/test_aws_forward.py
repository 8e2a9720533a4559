"""The AWS endpoint's forward to moto (local_stack/aws_proxy.py, Upstream): kept-alive connections and bytes
passed through, over real sockets, against an upstream that answers the ways an HTTP/1.1 server may
(Content-Length, chunked, to the end of the connection, a `100 Continue` first, closing an idle connection)."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from local_stack.aws_proxy import AwsProxy, Upstream


class ScriptedUpstream:
    """A raw HTTP/1.1 server: reads each request (Content-Length bodies), answers with `answer(request)`'s
    bytes, and closes the connection when told to. Records every connection and the requests on each."""

    def __init__(self, answer) -> None:
        self.answer = answer
        self.connections: list[list[bytes]] = []  # the requests (head + body) each connection carried
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc) -> None:
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests: list[bytes] = []
        self.connections.append(requests)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                request = head + await reader.readexactly(length)
                requests.append(request)
                answer, close = self.answer(request)
                writer.write(answer)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


def _fixed(status: bytes = b"200 OK", body: bytes = b'{"ok": true}', *headers: bytes):
    answer = b"HTTP/1.1 " + status + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n" + \
        b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body
    return lambda request: (answer, False)


def test_requests_share_one_kept_connection_and_pass_through_byte_for_byte():
    async def scenario():
        upstream = ScriptedUpstream(_fixed(b"400 Bad Request", b'{"__type": "x"}',
                                           b"x-amzn-RequestId: AbC", b"X-Amz-Crc32: 123"))
        async with upstream as endpoint:
            forward = Upstream(endpoint)
            headers = [(b"X-Amz-Target", b"DynamoDB_20120810.GetItem"), (b"x-mixed-Case", b"a, b")]
            answers = [await forward.request(b"POST", b"/path?q=%2F", headers, b"body-%d" % i) for i in range(3)]
            forward.close()
        assert len(upstream.connections) == 1 and len(upstream.connections[0]) == 3
        host = endpoint.removeprefix("http://").encode()
        assert upstream.connections[0][2] == (b"POST /path?q=%2F HTTP/1.1\r\nHost: " + host + b"\r\n"
                                              b"Content-Length: 6\r\nX-Amz-Target: DynamoDB_20120810.GetItem\r\n"
                                              b"x-mixed-Case: a, b\r\n\r\nbody-2")
        status, out_headers, body = answers[2]
        assert (status, body) == (400, b'{"__type": "x"}')
        assert (b"x-amzn-RequestId", b"AbC") in out_headers and (b"X-Amz-Crc32", b"123") in out_headers
    asyncio.run(scenario())


def test_chunked_and_read_to_close_answers_and_an_interim_100():
    answers = iter([
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst", False),
        ((b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"4\r\nchun\r\n3;ext=1\r\nked\r\n0\r\nX-Trailer: t\r\n\r\n"), False),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nto the end", True),  # no length: ends with the connection
        (b"HTTP/1.1 204 No Content\r\n\r\n", False),
    ])

    async def scenario():
        upstream = ScriptedUpstream(lambda request: next(answers))
        async with upstream as endpoint:
            forward = Upstream(endpoint)
            bodies = [(await forward.request(b"POST", b"/", [], b"x"))[::2] for _ in range(4)]
            forward.close()
        assert bodies == [(200, b"first"), (200, b"chunked"), (200, b"to the end"), (204, b"")]
        # the connection that ended its answer by closing was not used again; the others were
        assert [len(requests) for requests in upstream.connections] == [3, 1]
    asyncio.run(scenario())


def test_a_kept_connection_the_upstream_closed_while_idle_is_replaced_not_failed():
    answers = iter([(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none", True),  # closes after answering
                    (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo", False)])

    async def scenario():
        upstream = ScriptedUpstream(lambda request: next(answers))
        async with upstream as endpoint:
            forward = Upstream(endpoint)
            first = await forward.request(b"POST", b"/", [], b"1")
            await asyncio.sleep(0.1)  # the close reaches us while the connection is idle in the pool
            second = await forward.request(b"POST", b"/", [], b"2")
            forward.close()
        assert (first[2], second[2]) == (b"one", b"two")
        assert [len(requests) for requests in upstream.connections] == [1, 1]  # each request reached it once
    asyncio.run(scenario())


def test_a_kept_connection_found_closed_only_when_used_is_retried_once_on_a_new_one():
    answers = iter([(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none", False),
                    (b"", True),  # closed without a word, as a server's idle timeout does, racing the request
                    (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo", False)])

    async def scenario():
        upstream = ScriptedUpstream(lambda request: next(answers))
        async with upstream as endpoint:
            forward = Upstream(endpoint)
            first = await forward.request(b"POST", b"/", [], b"1")
            second = await forward.request(b"POST", b"/", [], b"2")
            forward.close()
        assert (first[2], second[2]) == (b"one", b"two")
        assert [len(requests) for requests in upstream.connections] == [2, 1]
    asyncio.run(scenario())


def test_a_new_connection_closed_before_an_answer_is_an_error_not_a_retry():
    async def scenario():
        upstream = ScriptedUpstream(lambda request: (b"", True))
        async with upstream as endpoint:
            forward = Upstream(endpoint)
            try:
                await forward.request(b"POST", b"/", [], b"1")
            except ConnectionError:
                pass
            else:
                raise AssertionError("answered without an answer")
            forward.close()
        assert [len(requests) for requests in upstream.connections] == [1]  # sent once: it may have been done
    asyncio.run(scenario())


def test_the_endpoint_passes_moto_answers_through_and_keeps_its_connection():
    """Through the whole endpoint: status, headers and body as moto sent them; hop-by-hop headers and a
    client's `Expect` are the endpoint's own business; one connection to moto serves every request."""
    def answer(request: bytes):
        body = json.dumps({"echo": request.split(b"\r\n\r\n", 1)[1].decode()}).encode()
        return (b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\nx-amzn-RequestId: R1\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body, False)

    async def scenario():
        upstream = ScriptedUpstream(answer)
        async with upstream as endpoint:
            proxy = AwsProxy(endpoint, invoker=None, functions_by_name={})
            await proxy.start()
            try:
                async with aiohttp.ClientSession() as http:
                    for i in range(3):
                        async with http.post(proxy.endpoint + "/?a=1", data=b'{"n": %d}' % i, headers={
                                "X-Amz-Target": "Kinesis_20131202.PutRecord", "Expect": "100-continue",
                                "Content-Type": "application/x-amz-json-1.1"}) as response:
                            assert response.status == 200
                            assert response.headers["x-amzn-RequestId"] == "R1"
                            assert response.headers["Content-Type"] == "application/x-amz-json-1.0"
                            assert await response.json(content_type=None) == {"echo": f'{{"n": {i}}}'}
            finally:
                await proxy.stop()
        assert len(upstream.connections) == 1 and len(upstream.connections[0]) == 3
        request = upstream.connections[0][0].lower()
        assert request.startswith(b"post /?a=1 http/1.1\r\n") and b"expect:" not in request
        assert request.count(b"\r\nhost: ") == 1 and request.count(b"\r\ncontent-length: ") == 1
    asyncio.run(scenario())


def test_an_upstream_that_is_down_is_a_500_not_a_hang():
    async def scenario():
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        proxy = AwsProxy(f"http://127.0.0.1:{port}", invoker=None, functions_by_name={})
        await proxy.start()
        try:
            async with aiohttp.ClientSession() as http, http.post(proxy.endpoint + "/", data=b"{}") as response:
                assert response.status == 500
        finally:
            await proxy.stop()
    asyncio.run(asyncio.wait_for(scenario(), 10))
