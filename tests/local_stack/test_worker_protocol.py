"""Lambda emulation: worker protocol, environment, errors, timeouts and pooling, with throwaway handlers."""

import asyncio
import time
from pathlib import Path
from textwrap import dedent

import pytest

from local_stack.lambdas import InvocationError, LambdaRuntime
from local_stack.template import FunctionSpec

HANDLERS = '''
import decimal, json, os, sys, time

import layered  # from the layer folder, like /opt/python

print("printed at import")


def ok(event, context):
    print("hello from print", event)
    sys.stdout.write("written without newline")
    sys.stdout.flush()
    os.write(1, b"raw write to fd 1\\n")
    return {
        "event": event,
        "layer": layered.VALUE,
        "context": {
            "function_name": context.function_name,
            "function_version": context.function_version,
            "invoked_function_arn": context.invoked_function_arn,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "aws_request_id": context.aws_request_id,
            "log_group_name": context.log_group_name,
            "log_stream_name": context.log_stream_name,
            "remaining": context.get_remaining_time_in_millis(),
        },
        "env": dict(os.environ),
        "cwd": os.getcwd(),
        "path": sys.path[:2],
        "pid": os.getpid(),
    }


def boom(event, context):
    raise ValueError("something broke")


def slow(event, context):
    time.sleep(event.get("seconds", 30))
    return {"pid": os.getpid()}


def die(event, context):
    os._exit(3)


def unserializable(event, context):
    return {"value": object()}


def number(event, context):
    return {"n": decimal.Decimal("1.5")}
'''


@pytest.fixture
def code(tmp_path):
    (tmp_path / "fn").mkdir()
    (tmp_path / "fn" / "app.py").write_text(HANDLERS)
    (tmp_path / "layer").mkdir()
    (tmp_path / "layer" / "layered.py").write_text("VALUE = 'from the layer'\n")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "app.py").write_text("import not_a_module_anywhere\n")
    return tmp_path


def spec(code: Path, handler: str = "app.ok", timeout: float = 5.0, folder: str = "fn") -> FunctionSpec:
    return FunctionSpec(
        logical_id="TestFunction", function_name="local-TestFunction", code_dir=code / folder, handler=handler,
        runtime="python3.13", layer_dirs=(code / "layer",), skipped_layers=(),
        environment={"TABLE_NAME": "local-Table", "STAGE_NAME": "dev"}, timeout=timeout, memory_size=256,
        log_group="/aws/lambda/local", log_format="JSON",
    )


def run(code: Path, fn: FunctionSpec, *calls, max_concurrency: int = 8):
    """Invokes each event in order on one runtime; returns results or InvocationErrors."""
    async def main():
        runtime = LambdaRuntime({fn.logical_id: fn}, aws_endpoint="http://127.0.0.1:1", region="eu-west-1",
                                log_dir=code / "logs", max_concurrency=max_concurrency)
        results = []
        try:
            for event in calls:
                try:
                    results.append(await runtime.invoke(fn.logical_id, event))
                except InvocationError as exc:
                    results.append(exc)
        finally:
            await runtime.close()
        return results
    return asyncio.run(main())


def log_text(code: Path) -> str:
    return (code / "logs" / "TestFunction.log").read_text()


def test_prints_and_fd1_writes_go_to_the_log_not_the_protocol(code):
    (result,) = run(code, spec(code), {"hello": "world"})
    assert result["event"] == {"hello": "world"}
    logs = log_text(code)
    for line in ("printed at import", "hello from print {'hello': 'world'}", "written without newline",
                 "raw write to fd 1", "REPORT RequestId:"):
        assert line in logs
    assert "\x00" not in logs  # the end-of-logs marker is stripped


def test_an_invocations_logs_are_written_before_its_result_is_returned(code):
    fn = spec(code)

    async def main():
        runtime = LambdaRuntime({fn.logical_id: fn}, aws_endpoint=None, region="eu-west-1", log_dir=code / "logs")
        try:
            for n in range(20):
                await runtime.invoke(fn.logical_id, {"n": n})
                assert f"hello from print {{'n': {n}}}" in log_text(code)
        finally:
            await runtime.close()

    asyncio.run(main())


def test_environment_is_the_template_plus_lambda_variables_only(code, monkeypatch):
    monkeypatch.setenv("LEAKY_PARENT_VARIABLE", "1")
    (result,) = run(code, spec(code), {})
    env = result["env"]
    assert "LEAKY_PARENT_VARIABLE" not in env
    assert env["TABLE_NAME"] == "local-Table" and env["STAGE_NAME"] == "dev"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "local-TestFunction"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert env["AWS_ACCESS_KEY_ID"] and env["AWS_SECRET_ACCESS_KEY"]
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:1"
    assert env["POWERTOOLS_TRACE_DISABLED"] == "true"
    assert env["LAMBDA_TASK_ROOT"] == str(code / "fn")
    assert env["_HANDLER"] == "app.ok"
    assert env["AWS_LAMBDA_LOG_FORMAT"] == "JSON"
    assert result["cwd"] == str(code / "fn")
    assert result["path"] == [str(code / "fn"), str(code / "layer")]
    assert result["layer"] == "from the layer"


def test_context_object(code):
    (result,) = run(code, spec(code, timeout=5), {})
    ctx = result["context"]
    assert ctx["function_name"] == "local-TestFunction"
    assert ctx["function_version"] == "$LATEST"
    assert ctx["invoked_function_arn"] == "arn:aws:lambda:eu-west-1:123456789012:function:local-TestFunction"
    assert ctx["memory_limit_in_mb"] == "256"
    assert len(ctx["aws_request_id"]) == 36
    assert ctx["log_group_name"] == "/aws/lambda/local"
    assert "[$LATEST]" in ctx["log_stream_name"]
    assert 4000 < ctx["remaining"] <= 5000


def test_handler_exception_is_an_error_result_and_the_worker_stays_warm(code):
    fn = spec(code, handler="app.boom")
    error, again = run(code, fn, {}, {})
    assert isinstance(error, InvocationError)
    assert error.error["errorType"] == "ValueError"
    assert error.error["errorMessage"] == "something broke"
    assert isinstance(error.error["stackTrace"], list)
    assert "Traceback" in log_text(code)
    assert isinstance(again, InvocationError) and again.error["errorType"] == "ValueError"
    assert log_text(code).count("Init Duration") == 1  # one worker served both


def test_timeout_kills_the_worker_and_the_next_call_gets_a_fresh_one(code):
    fn = spec(code, handler="app.slow", timeout=1)
    started = time.monotonic()
    timed_out, fast = run(code, fn, {"seconds": 30}, {"seconds": 0})
    assert isinstance(timed_out, InvocationError)
    assert timed_out.error == {"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out after 1.00 seconds"}
    assert "pid" in fast
    assert time.monotonic() - started < 10


def test_crash_is_reported_and_does_not_break_the_pool(code):
    crashed, fine = run(code, spec(code, handler="app.die"), {}, {})
    assert isinstance(crashed, InvocationError)
    assert crashed.error["errorType"] == "Runtime.ExitError" and "exit status 3" in crashed.error["errorMessage"]
    assert isinstance(fine, InvocationError) and fine.error["errorType"] == "Runtime.ExitError"


def test_unserializable_result_and_decimal(code):
    (error,) = run(code, spec(code, handler="app.unserializable"), {})
    assert error.error["errorType"] == "Runtime.MarshalError"
    (result,) = run(code, spec(code, handler="app.number"), {})
    assert result == {"n": 1.5}


@pytest.mark.parametrize("folder, handler, error_type", [
    ("broken", "app.handler", "Runtime.ImportModuleError"),
    ("fn", "app.missing", "Runtime.HandlerNotFound"),
    ("nowhere", "app.handler", "Runtime.ImportModuleError"),
])
def test_init_failures_are_error_results(code, folder, handler, error_type):
    first, second = run(code, spec(code, handler=handler, folder=folder), {}, {})
    assert isinstance(first, InvocationError) and first.error["errorType"] == error_type
    assert isinstance(second, InvocationError) and second.error["errorType"] == error_type


def test_concurrent_invocations_run_in_parallel_workers(code):
    fn = spec(code, handler="app.slow")

    async def main():
        runtime = LambdaRuntime({fn.logical_id: fn}, aws_endpoint=None, region="eu-west-1", max_concurrency=4)
        try:
            await runtime.warm()
            started = time.monotonic()
            results = await asyncio.gather(*(runtime.invoke(fn.logical_id, {"seconds": 0.5}) for _ in range(8)))
            return results, time.monotonic() - started, runtime.pools[fn.logical_id].size
        finally:
            await runtime.close()

    results, elapsed, size = asyncio.run(main())
    assert len({r["pid"] for r in results}) > 1
    assert size == 4
    assert elapsed < 3.5  # one worker would need 4 s


def test_unknown_function():
    async def main():
        runtime = LambdaRuntime({}, aws_endpoint=None, region="eu-west-1")
        try:
            await runtime.invoke("Nope", {})
        finally:
            await runtime.close()
    with pytest.raises(LookupError):
        asyncio.run(main())


def test_worker_source_is_standard_library_only():
    # The worker runs inside the function's environment: it must not import the local stack or third parties.
    source = (Path(__file__).resolve().parents[2] / "local_stack" / "worker.py").read_text()
    imports = {line.split()[1].split(".")[0] for line in source.splitlines()
               if line.startswith(("import ", "from ")) and "__future__" not in line}
    assert imports <= {"decimal", "importlib", "json", "os", "sys", "time", "traceback"}, dedent(str(imports))


def test_by_default_a_function_overlaps_more_invocations_than_two_workers_allow(code):
    # Lambda scales a function past 2 concurrent environments; the local default must not queue
    # 8 concurrent calls behind 2 workers (that capped 20 speakers' sendAudio at ~30 chunks/s).
    fn = spec(code, handler="app.slow")

    async def main():
        runtime = LambdaRuntime({fn.logical_id: fn}, aws_endpoint=None, region="eu-west-1")
        try:
            await runtime.warm()
            await asyncio.gather(*(runtime.invoke(fn.logical_id, {"seconds": 0.5}) for _ in range(8)))
            # Workers start one at a time; by the second burst the pool has grown to meet it.
            started = time.monotonic()
            results = await asyncio.gather(*(runtime.invoke(fn.logical_id, {"seconds": 1.0}) for _ in range(8)))
            return results, time.monotonic() - started, runtime.pools[fn.logical_id].size
        finally:
            await runtime.close()

    results, elapsed, size = asyncio.run(main())
    print(f"workers {size}, distinct pids {len({r['pid'] for r in results})}, second burst {elapsed:.2f} s")
    assert size > 2
    assert elapsed < 3.5  # 2 workers need 4 s for 8 one-second calls
