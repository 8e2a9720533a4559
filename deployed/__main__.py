"""`python -m deployed add-user --stack NAME [--region REGION] EMAIL`: a user of a deployed stack's pool, with
a password typed at the prompt (or BROADCAST_PASSWORD), ready to sign in (no invitation e-mail, no forced
change at the first sign-in)."""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from botocore.exceptions import BotoCoreError, ClientError

from . import DeployedStackError, add_user, read_outputs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployed", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add-user", help="create a user in the stack's user pool")
    add.add_argument("--stack", required=True, help="the deployed stack's name")
    add.add_argument("--region", help="its region (default: boto3's, e.g. AWS_REGION)")
    add.add_argument("email")
    args = parser.parse_args(argv)
    password = os.environ.get("BROADCAST_PASSWORD") or getpass.getpass(f"Password for {args.email}: ")
    try:
        outputs = read_outputs(args.stack, args.region)
        username = add_user(outputs["UserPoolId"], outputs["Region"], args.email, password)
    except DeployedStackError as exc:
        print(f"add-user: {exc}", file=sys.stderr)
        return 1
    except (ClientError, BotoCoreError) as exc:
        message = exc.response["Error"]["Message"] if isinstance(exc, ClientError) else str(exc)
        print(f"add-user: {message}", file=sys.stderr)
        return 1
    print(f"{args.email} can sign in to stack {args.stack} (user {username}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
