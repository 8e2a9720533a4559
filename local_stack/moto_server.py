"""Moto in server mode, in its own process (run as a script by local_stack.aws).

Moto is pure Python: in the gateway's process it would compete for the same
GIL, so it gets a process (and, on a 2-core machine, a core) of its own.
Prints {"port": N} (or {"error": "..."}) as its first stdout line, then a line
for each batch of stream records appended (announce_stream_records), and serves
until SIGTERM/SIGINT or until its stdin closes, so it never outlives the stack,
even if the stack is killed outright.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import threading
from importlib import metadata
from typing import TextIO

# The patches below reach into moto's internals (module paths, private functions, the DynamoDB backend's
# transaction code) as this version has them; on another they could break silently, so they refuse to run.
SUPPORTED_MOTO = "5.2.5"


def moto_version_problem(installed: str | None = None) -> str | None:
    """Why the patches can't be applied to the installed moto (None: they can)."""
    if installed is None:
        try:
            installed = metadata.version("moto")
        except metadata.PackageNotFoundError:
            installed = "none"
    if installed == SUPPORTED_MOTO:
        return None
    return (f"the local stack's moto patches are written for moto {SUPPORTED_MOTO}, but moto {installed} is "
            f"installed; install moto[server]=={SUPPORTED_MOTO} (requirements/dev.txt) or review the patches "
            f"in local_stack/moto_server.py for {installed} and update SUPPORTED_MOTO")


def _port_free(host: str, port: int) -> str | None:
    # ThreadedMotoServer.start() blocks forever when its bind fails, so check first.
    if port == 0:
        return None
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return f"cannot listen on {host}:{port}: {exc.strerror}"
    return None


def _reuse_step_functions_clients() -> None:
    """moto's Step Functions interpreter builds a new boto3 client for every task (about 0.1 s of CPU
    each); one client per (region, service) serves them all, as botocore clients are thread-safe."""
    import functools
    import importlib
    import pkgutil

    from moto.stepfunctions.parser.asl.component.state.exec import state_task
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import service
    from moto.stepfunctions.parser.asl.utils import boto_client

    original = boto_client.boto_client_for
    cached = functools.lru_cache(maxsize=None)(lambda region, service_name: original(region, service_name))

    def boto_client_for(region, service, state_credentials=None):  # noqa: ANN001 - moto's signature
        return cached(region, service)

    # The task modules import the function by name, so each gets the cached one.
    for package in (state_task, service):
        for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            module = importlib.import_module(info.name)
            if getattr(module, "boto_client_for", None) is original:
                module.boto_client_for = boto_client_for


def make_dynamodb_thread_safe() -> None:
    """ThreadedMotoServer serves each request on its own thread, but moto's DynamoDB backend is not
    thread-safe, and its TransactWriteItems keeps a rollback copy of every table it touches:

    - the copy is a deepcopy of the whole table, its stream's history included (every record since the
      stack started), so each transaction costs more the longer the stack runs (0.2-0.7 s of CPU at
      ~2,000 records);
    - the copy fails ("dictionary changed size during iteration") when another thread writes meanwhile;
    - a cancelled transaction puts the copy back: writes other threads made in between are undone, and
      the table's stream shard is replaced by its copy, so the stream poller (holding iterators of the
      old shard) never sees another record: status broadcasts stop for the rest of the stack's life.

    So: one lock around every DynamoDB and DynamoDB Streams request, and a transaction snapshots only the
    items it touches; on failure it puts those back and drops the stream records of the undone writes."""
    import copy

    import moto.dynamodb.models as dynamodb_models
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

    lock = threading.RLock()
    for handler in (DynamoHandler, DynamoDBStreamsHandler):
        def call_action(self, _original=handler.call_action):  # noqa: ANN001, ANN202 - moto's signature
            with lock:
                return _original(self)
        handler.call_action = call_action

    class _NoTableCopies:
        """moto.dynamodb.models' `copy`: a table's "copy" is the table itself (the snapshot is ours)."""

        @staticmethod
        def deepcopy(value, memo=None):  # noqa: ANN001, ANN205
            return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    dynamodb_models.copy = _NoTableCopies
    backend = dynamodb_models.DynamoDBBackend
    original_transact = backend.transact_write_items

    def transact_write_items(self, transact_items):  # noqa: ANN001, ANN202
        touched, streams = [], {}
        for entry in transact_items:
            for op_type, op in entry.items():
                table = self.tables.get(op.get("TableName")) if isinstance(op, dict) else None
                key = (op.get("Item") if op_type == "Put" else op.get("Key")) if table else None
                try:
                    hash_value = DynamoType(key[table.hash_key_attr])
                    range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
                except (KeyError, TypeError):
                    continue  # moto refuses it before writing anything
                touched.append((table, hash_value, range_value,
                                copy.deepcopy(table.get_item(hash_value, range_value))))
                if table.stream_shard is not None:
                    streams.setdefault(id(table), (table.stream_shard, len(table.stream_shard.items)))
        try:
            return original_transact(self, transact_items)
        except Exception:
            for table, hash_value, range_value, before in reversed(touched):
                if range_value is None:
                    if before is None:
                        table.items.pop(hash_value, None)
                    else:
                        table.items[hash_value] = before
                elif before is None:
                    table.items[hash_value].pop(range_value, None)
                else:
                    table.items[hash_value][range_value] = before
            for shard, count in streams.values():
                del shard.items[count:]  # the records of the writes just undone
            raise

    backend.transact_write_items = transact_write_items


def keep_alive_request_handler() -> type:
    """werkzeug's development server closes the connection after every response (`Connection: close`),
    because http.server cannot skip a request body the application left unread before reading the next
    request line. So every AWS call was a new TCP connection and a new server thread: about a third of
    moto's CPU per call (docs/local-stack.md).

    This handler reads a request whose body length is known (Content-Length, or none: no body, as botocore
    and aiohttp send them) through a stream limited to that length, skips what the application left of
    the body after the response, and keeps the connection open for the client's next request. Anything
    else (a chunked body, HTTP/1.0, `Connection: close`) is served as werkzeug does, then closed."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.exceptions import ClientDisconnected
    from werkzeug.wsgi import LimitedStream

    class KeepAliveRequestHandler(MotoRequestHandler):
        timeout = 120  # s an idle connection's thread waits for the next request (clients close theirs sooner)
        # werkzeug writes a response's headers and body in two sends (and `100 Continue` before reading a
        # body, so the writes stay unbuffered): on a kept connection Nagle's algorithm would hold the body
        # until the client's delayed ACK, 40 ms later.
        disable_nagle_algorithm = True
        _keep_alive = False

        def run_wsgi(self) -> None:
            length = self.headers.get("Content-Length", "0")
            self._keep_alive = not (self.close_connection or self.request_version != "HTTP/1.1"
                                    or "Transfer-Encoding" in self.headers or not length.isdigit())
            if not self._keep_alive:
                return super().run_wsgi()
            connection, self.rfile = self.rfile, LimitedStream(self.rfile, int(length))
            try:
                super().run_wsgi()  # its last step, "discard what is left to read", reads only this body
                self.rfile.exhaust()
            except ClientDisconnected:  # gone before its body was all there: nothing more to read
                self.close_connection = True
            finally:
                self.rfile = connection

        def send_header(self, keyword: str, value: str) -> None:
            if self._keep_alive and keyword.lower() == "connection" and value.lower() == "close":
                return
            super().send_header(keyword, value)

    return KeepAliveRequestHandler


def keep_connections_alive() -> None:
    """moto's server answers with keep_alive_request_handler's handler."""
    from moto.moto_server import threaded_moto_server

    threaded_moto_server.MotoRequestHandler = keep_alive_request_handler()


def cache_request_routing() -> None:
    """moto finds the service of every request anew: it lists its own package directory (about 200
    isdir calls) twice and tries a few hundred URL patterns, under a lock, and lists a response class's
    methods with inspect.getmembers. None of it changes while the server runs, so each answer is kept."""
    import functools

    from moto import backends
    from moto.core import responses
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    modules = frozenset(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules
    responses.method_names_from_class = functools.cache(responses.method_names_from_class)
    original = DomainDispatcherApplication.get_backend_for_host
    backend_of: dict = {}

    def get_backend_for_host(self, host):  # noqa: ANN001, ANN202 - moto's signature
        if host not in backend_of:
            backend_of[host] = original(self, host)
        return backend_of[host]

    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host


# The JSON protocols whose every request is one POST to "/" naming its operation in X-Amz-Target, and the
# one handler moto's Flask app routes them to (their urls.py).
_JSON_DISPATCH = {"dynamodb": ("moto.dynamodb.responses", "DynamoHandler"),
                  "kinesis": ("moto.kinesis.responses", "KinesisResponse")}


def dispatch_json_protocols_directly() -> None:
    """moto's server hands every request to a Flask app per service, whose routing, request and app contexts
    and CORS wrapper cost a fair part of moto's CPU per call (docs/local-stack.md), only to call the one
    handler a JSON protocol has. This calls that handler the way moto's Flask view does
    (`moto.core.utils.convert_to_flask_response`: the same normalized request, recorder, status, headers and
    body), as moto's in-process mock also skips Flask. Without an Origin (AWS SDKs send none) moto's CORS
    wrapper adds only `Access-Control-Allow-Origin: *`, added here too; a request with an Origin, and every
    other service, still goes through Flask."""
    import importlib

    from botocore.exceptions import ClientError
    from flask import Response
    from moto.core.request import normalize_request
    from moto.moto_api import recorder
    from moto.moto_server.werkzeug_app import DISABLE_GLOBAL_CORS, BackendRequest, DomainDispatcherApplication

    handlers = {service: getattr(importlib.import_module(module), name).dispatch
                for service, (module, name) in _JSON_DISPATCH.items()}
    original = DomainDispatcherApplication.__call__

    def __call__(self, environ, start_response):  # noqa: ANN001, ANN202, N807 - WSGI's signature
        app = self.get_application(environ)
        handler = handlers.get(getattr(app, "service", None))
        if (handler is None or environ.get("REQUEST_METHOD") != "POST" or environ.get("PATH_INFO") != "/"
                or "HTTP_X_AMZ_TARGET" not in environ or "HTTP_ORIGIN" in environ):
            return app(environ, start_response)
        request = normalize_request(BackendRequest(environ))
        recorder._record_request(request)
        try:
            result = handler(request, request.raw_url, dict(request.headers))
        except ClientError as exc:
            result = 400, {}, exc.response["Error"]["Message"]
        status, headers, content = result if len(result) == 3 else (200, {}, result)
        response = Response(response=content, status=status, headers=headers)
        if not DISABLE_GLOBAL_CORS:
            response.headers["Access-Control-Allow-Origin"] = "*"
        return response(environ, start_response)

    __call__.original = original
    DomainDispatcherApplication.__call__ = __call__


def announce_stream_records(out: TextIO) -> None:
    """Tells the stack, on `out`, which streams got records: a Kinesis stream's shards, a DynamoDB table's
    stream. The stack's pollers wait for this notice instead of polling moto (which cost about half a core
    with nothing happening). Patched where moto appends the records, so writes made inside moto (Step
    Functions' SDK integrations) are announced too. A notice is one JSON line, {"kinesis": {stream:
    [shard, ...]}, "dynamodb": [table, ...]}, written by a thread of its own: a request never waits on the
    pipe, and a burst of puts becomes one line."""
    from moto.dynamodb.models.table import StreamShard
    from moto.kinesis.models import Stream

    changed = threading.Condition()
    kinesis: dict[str, set[str]] = {}
    tables: set[str] = set()

    original_put = Stream.put_record

    def put_record(self, partition_key, explicit_hash_key, data):  # noqa: ANN001, ANN202 - moto's signature
        sequence_number, shard_id = original_put(self, partition_key, explicit_hash_key, data)
        with changed:
            kinesis.setdefault(self.stream_name, set()).add(shard_id)
            changed.notify()
        return sequence_number, shard_id

    original_add = StreamShard.add

    def add(self, old, new):  # noqa: ANN001, ANN202 - moto's signature
        original_add(self, old, new)
        with changed:
            tables.add(self.table.name)
            changed.notify()

    def write() -> None:
        while True:
            with changed:
                changed.wait_for(lambda: kinesis or tables)
                notice = {"kinesis": {name: sorted(shards) for name, shards in kinesis.items()},
                          "dynamodb": sorted(tables)}
                kinesis.clear()
                tables.clear()
            try:
                out.write(json.dumps(notice) + "\n")
                out.flush()
            except (BrokenPipeError, ValueError):  # the stack is gone (or stopping): nobody to tell
                return

    Stream.put_record = put_record
    StreamShard.add = add
    threading.Thread(target=write, daemon=True, name="stream-notices").start()


def refuse_sign_up_when_admin_only() -> None:
    """Cognito refuses SignUp in a pool whose AdminCreateUserConfig.AllowAdminCreateUserOnly is true
    (NotAuthorizedException, "SignUp is not permitted for this user pool"); moto 5.2.5 keeps the setting
    but signs the user up anyway."""
    from moto.cognitoidp.exceptions import NotAuthorizedError
    from moto.cognitoidp.models import CognitoIdpBackend

    original = CognitoIdpBackend.sign_up

    def sign_up(self, client_id, username, password, attributes):  # noqa: ANN001, ANN202 - moto's signature
        for pool in self.user_pools.values():
            if client_id in pool.clients and pool.extended_config.get("AdminCreateUserConfig", {}).get(
                    "AllowAdminCreateUserOnly"):
                raise NotAuthorizedError("SignUp is not permitted for this user pool")
        return original(self, client_id, username, password, attributes)

    CognitoIdpBackend.sign_up = sign_up


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--execute-state-machines", action="store_true",
                        help="run Step Functions executions (their AWS calls go to $MOTO_PORT)")
    args = parser.parse_args()

    def report(message: dict) -> bool:
        try:
            sys.stdout.write(json.dumps(message) + "\n")
            sys.stdout.flush()
        except BrokenPipeError:  # the stack gave up on us (stopped while starting)
            return False
        return True

    problem = moto_version_problem() or _port_free(args.host, args.port)
    if problem:
        report({"error": problem})
        return 1

    # One log line per request would cost more than the request itself.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from moto.core.config import default_user_config
    from moto.server import ThreadedMotoServer

    make_dynamodb_thread_safe()
    refuse_sign_up_when_admin_only()
    keep_connections_alive()
    cache_request_routing()
    dispatch_json_protocols_directly()

    if args.execute_state_machines:
        default_user_config["stepfunctions"]["execute_state_machine"] = True
        _reuse_step_functions_clients()

    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    if not report({"port": server.get_host_and_port()[1]}):
        server.stop()
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 1
    announce_stream_records(sys.stdout)  # after the port line: the stack reads notices from then on

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def watch_stdin() -> None:
        sys.stdin.buffer.read()  # returns at EOF: the stack is gone
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
