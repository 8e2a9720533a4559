"""The teardown workflow (a Step Functions state machine, TEARDOWN_STATE_MACHINE_ARN): starting an execution
by name and reading how one went. The only module that speaks Step Functions."""

from __future__ import annotations

import json

from .aws import Declined, call
from .settings import settings


def start(name: str, payload: dict) -> bool:
    """Starts an execution named `name`; False if that name was used already (Step Functions refuses a
    running or closed execution's name for 90 days)."""
    try:
        call("stepfunctions", "start_execution", expected=("ExecutionAlreadyExists",),
             stateMachineArn=_machine(), name=name, input=json.dumps(payload))
    except Declined:
        return False
    return True


def status(name: str) -> str:
    """The status of the execution named `name`: RUNNING, SUCCEEDED, FAILED, TIMED_OUT or ABORTED."""
    return call("stepfunctions", "describe_execution", executionArn=execution_arn(_machine(), name))["status"]


def execution_arn(state_machine_arn: str, name: str) -> str:
    # arn:aws:states:region:account:stateMachine:Name -> arn:aws:states:region:account:execution:Name:name
    return f"{state_machine_arn.replace(':stateMachine:', ':execution:', 1)}:{name}"


def _machine() -> str:
    return settings().required("teardown_state_machine_arn")
