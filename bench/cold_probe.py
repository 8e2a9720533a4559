"""One cold start, run as a fresh process by bench/cold_start.py (``python -I cold_probe.py CONFIG_JSON``).

mode "function": sys.path = the function's folder, then the layer folder (Lambda's /var/task, then
/opt/python), then the interpreter's own; imports the handler module and invokes it once with the sample
event. mode "baseline": imports boto3, makes a DynamoDB client and does one GetItem.

Prints one JSON line to the original stdout: the CLOCK_MONOTONIC times (time.monotonic(), shared by every
process on the machine, so the parent subtracts its own start time) of "imported" and "done", and the first
answer's outcome. The handler's own stdout (Powertools logs) goes to stderr, as in local_stack/worker.py.
Standard library only, so nothing but what is measured is imported.
"""

import json
import os
import sys
import time


class Context:
    """The attributes and method of the Python runtime's context object."""

    def __init__(self, config: dict) -> None:
        self.function_name = config["function_name"]
        self.function_version = "$LATEST"
        self.invoked_function_arn = config["function_arn"]
        self.memory_limit_in_mb = str(config["memory_size"])
        self.aws_request_id = "cold-start-probe"
        self.log_group_name = "/aws/lambda/cold-start"
        self.log_stream_name = "cold-start"
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + 10

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def outcome(result: object) -> str:
    """A short description of the first answer: status code and error code, policy effect, or ok."""
    if isinstance(result, dict):
        if "statusCode" in result:
            text = str(result["statusCode"])
            try:
                body = json.loads(result.get("body") or "null")
            except ValueError:
                body = None
            if isinstance(body, dict):
                error = body.get("error")  # HTTP: {"error": {"code": ...}}; WebSocket: {"type", "code"}
                label = (error.get("code") if isinstance(error, dict) else body.get("code")) or body.get("type")
                if label:
                    text += f" {label}"
            return text
        if "policyDocument" in result:
            return result["policyDocument"]["Statement"][0]["Effect"]
    return "ok " + json.dumps(result, default=str)[:60]


def main() -> int:
    config = json.loads(sys.argv[1])
    protocol = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    if config["mode"] == "baseline":
        import boto3

        ddb = boto3.client("dynamodb")
        imported = time.monotonic()
        item = ddb.get_item(TableName=config["table"], Key=config["key"]).get("Item")
        done = time.monotonic()
        result = "found" if item else "not found"
    else:
        sys.path[:0] = config["path"]
        os.chdir(config["path"][0])
        module_name, _, function_name = config["handler"].rpartition(".")
        module = __import__(module_name)
        imported = time.monotonic()
        with open(config["event_file"], encoding="utf-8") as f:
            event = json.load(f)
        if config.get("event_patch"):
            event = _patch(event, config["event_patch"])
        try:
            result = outcome(getattr(module, function_name)(event, Context(config)))
        except Exception as exc:  # noqa: BLE001 - a raising handler is an answer too (the authorizer's 401)
            result = f"raised {type(exc).__name__}: {str(exc)[:60]}"
        done = time.monotonic()
    sys.stdout.flush()
    protocol.write(json.dumps({"imported": imported, "done": done, "outcome": result}) + "\n")
    protocol.flush()
    return 0


def _patch(event: dict, patch: dict) -> dict:
    """Sets nested values: {"queryStringParameters.token": "..."}."""
    for path, value in patch.items():
        target = event
        *parents, last = path.split(".")
        for key in parents:
            target = target.setdefault(key, {})
        target[last] = value
    return event


if __name__ == "__main__":
    sys.exit(main())
