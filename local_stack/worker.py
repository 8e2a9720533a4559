"""One Lambda execution environment: imports a handler once, then serves invocations.

Run as a script (``python -I worker.py CONFIG_JSON``) by local_stack.lambdas, so
nothing of the local stack lands on the handler's sys.path: it sees its code
folder (/var/task), then its local layers (/opt/python), then the venv.
Standard library only, to keep cold starts as short as the handler allows.

Protocol, one JSON document per line:
  stdin  <- {"id": request id, "event": ..., "timeout_ms": N}
  fd "protocol" (a dup of the original stdout) ->
           {"ready": true} once, after init (or {"ok": false, "error": ...} then exit),
           {"ok": true, "result": ...} or {"ok": false, "error": {errorType, errorMessage, ...}}
  stderr -> the function's logs, each invocation's closed by END_OF_LOGS + request id
File descriptor 1 is pointed at stderr before any user code runs, so a handler's
print() or a library writing to stdout ends up in the logs, never in the protocol.
"""

from __future__ import annotations

import decimal
import importlib
import json
import os
import sys
import time
import traceback

# Never part of a text log line; the stack strips it (see lambdas.Worker).
END_OF_LOGS = b"\x00local-stack:end:"


class LambdaContext:
    """The attributes and method of the Python runtime's context object."""

    def __init__(self, config: dict, request_id: str, timeout_ms: int) -> None:
        self.function_name = config["function_name"]
        self.function_version = "$LATEST"
        self.invoked_function_arn = config["function_arn"]
        # The real runtime reads it from the environment, hence a string.
        self.memory_limit_in_mb = str(config["memory_size"])
        self.aws_request_id = request_id
        self.log_group_name = config["log_group"]
        self.log_stream_name = config["log_stream"]
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _decimal_default(value: object) -> object:
    # Like the Python runtime's marshaller: Decimal (boto3's DynamoDB numbers) becomes a float.
    if isinstance(value, decimal.Decimal):
        return float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _error(error_type: str, message: str, exc: BaseException | None = None) -> dict:
    error = {"errorType": error_type, "errorMessage": message}
    if exc is not None:
        error["stackTrace"] = traceback.format_tb(exc.__traceback__)
    return error


def _load_handler(handler: str):
    module_name, _, function_name = handler.rpartition(".")
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as exc:
        return None, _error("Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}", exc)
    except SyntaxError as exc:
        return None, _error("Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_name}': {exc}", exc)
    except Exception as exc:  # noqa: BLE001 - any init failure is reported, not raised
        return None, _error(type(exc).__name__, str(exc), exc)
    function = getattr(module, function_name, None)
    if not callable(function):
        return None, _error("Runtime.HandlerNotFound", f"Handler '{function_name}' missing on module '{module_name}'")
    return function, None


def main() -> int:
    config = json.loads(sys.argv[1])
    protocol = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)

    # /var/task first, then /opt/python, then the interpreter's own paths.
    sys.path[:0] = config["path"]
    os.chdir(config["path"][0])

    def send(message: dict) -> None:
        try:
            data = json.dumps(message, default=_decimal_default).encode()
        except (TypeError, ValueError) as exc:
            data = json.dumps({"ok": False, "error": _error(
                "Runtime.MarshalError", f"Unable to marshal response: {exc}")}).encode()
        protocol.write(data + b"\n")

    handler, init_error = _load_handler(config["handler"])
    if init_error:
        print(f"INIT_FAILED {init_error['errorType']}: {init_error['errorMessage']}", file=sys.stderr)
        send({"ok": False, "error": init_error})
        return 1
    send({"ready": True})

    for line in sys.stdin.buffer:
        message = json.loads(line)
        context = LambdaContext(config, message["id"], message["timeout_ms"])
        try:
            response = {"ok": True, "result": handler(message["event"], context)}
        except Exception as exc:  # noqa: BLE001 - a failing handler is a result, like in Lambda
            error = _error(type(exc).__name__, str(exc), exc)
            error["requestId"] = message["id"]
            print(f"[ERROR] {type(exc).__name__}: {exc}\n{''.join(traceback.format_exception(exc))}",
                  end="", file=sys.stderr)
            response = {"ok": False, "error": error}
        # Marks the end of this invocation's logs, so the stack can have them written
        # before it answers (tests read the log right after the response).
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os.write(2, END_OF_LOGS + message["id"].encode() + b"\n")
        send(response)
    return 0


if __name__ == "__main__":
    sys.exit(main())
