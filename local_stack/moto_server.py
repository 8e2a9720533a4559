"""Moto in server mode, in its own process (run as a script by local_stack.aws).

Moto is pure Python: in the gateway's process it would compete for the same
GIL, so it gets a process (and, on a 2-core machine, a core) of its own.
Prints {"port": N} (or {"error": "..."}) as its first stdout line, then serves
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

    problem = _port_free(args.host, args.port)
    if problem:
        report({"error": problem})
        return 1

    # One log line per request would cost more than the request itself.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from moto.core.config import default_user_config
    from moto.server import ThreadedMotoServer

    if args.execute_state_machines:
        default_user_config["stepfunctions"]["execute_state_machine"] = True
        _reuse_step_functions_clients()

    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    if not report({"port": server.get_host_and_port()[1]}):
        server.stop()
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 1

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
