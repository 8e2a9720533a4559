"""`make bench`: every benchmark, each against a fresh local stack of its own, one report; or, with
--stack NAME, the HTTP, WebSocket and audio paths of a deployed stack against Req 11's budgets.

Prints a Markdown table and saves it with a JSON copy under bench/results/ (see bench/README.md).
Usage: python -m bench [--only http,websocket,audio,teardown,crowd,fanout,cold,size,mouth,calls] [--stack-args "..."] [--keep-state DIR]
       python -m bench --stack NAME [--region REGION] [--only http,websocket,audio] [--short]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import sys
import tempfile
import time
import traceback
from pathlib import Path

from deployed import DeployedStackError, deployed_stack
from local_stack.launcher import ROOT, running_stack

from . import audio, aws_calls, cold_start, crowd, deployed, fanout, http_api, mouth_to_ear, size, teardown, websocket
from .support import raise_open_files, revision_tree

RESULTS = Path(__file__).resolve().parent / "results"
# Each suite is a module with run(info) -> rows and, optionally, STACK_ARGS: the arguments of
# `python -m local_stack dev` it needs (teardown: a listener cap above 1,000), or STACK = False:
# it needs no local stack (cold starts bring their own moto endpoint; size runs `sam build`); and, for --before,
# prepare_before(tree): what the suite needs of the revision beyond its stack (the mouth suite: its console).
SUITES = {"http": http_api, "websocket": websocket, "audio": audio, "teardown": teardown,
          "crowd": crowd, "fanout": fanout, "cold": cold_start, "size": size, "mouth": mouth_to_ear,
          "calls": aws_calls}
# With --stack: the suites of bench/deployed.py, against a deployed stack.
DEPLOYED_SUITES = ("http", "websocket", "audio")
# Sockets: 1,000 listeners are 1,000 descriptors in this process and 1,000 in the stack, which
# inherits this limit. 1024 (a common default) is not enough.
OPEN_FILES = 8192


# Every suite creates its sessions as one user: the per-user cap (default 3) is lifted on the bench's stacks.
BENCH_STACK_ARGS = ["--parameter-overrides", "MaxLiveSessionsPerUser=1000"]


def stack_args(*parts: list[str]) -> list[str]:
    """The parts joined, their --parameter-overrides merged into one (the stack's argparse keeps only the
    last occurrence of the option; a later part wins for the same key)."""
    plain, overrides = [], {}
    for part in parts:
        tokens, i = list(part), 0
        while i < len(tokens):
            if tokens[i] == "--parameter-overrides":
                i += 1
                while i < len(tokens) and not tokens[i].startswith("--"):
                    key, _, value = tokens[i].partition("=")
                    overrides[key] = value
                    i += 1
            else:
                plain.append(tokens[i])
                i += 1
    return plain + (["--parameter-overrides", *(f"{k}={v}" for k, v in overrides.items())] if overrides else [])


def markdown(rows: list[dict]) -> str:
    lines = ["| measure | n | p50 | p95 | baseline p50 | baseline p95 | ratio p50 | ratio p95 | goal | met |",
             "|---|---|---|---|---|---|---|---|---|---|"]

    def fmt(value, unit=""):
        return "" if value is None else f"{value:.1f}{unit}" if isinstance(value, float) else f"{value}{unit}"

    for r in rows:
        unit = f" {r['unit']}" if r.get("unit") else ""
        lines.append("| " + " | ".join([
            r["measure"], fmt(r.get("n")), fmt(r.get("p50"), unit), fmt(r.get("p95"), unit),
            fmt(r.get("baseline_p50"), unit), fmt(r.get("baseline_p95"), unit),
            *("" if r.get(key) is None else f"{r[key]:.2f}x" for key in ("ratio_p50", "ratio_p95")),
            r.get("goal", ""),
            {True: "yes", False: "**no**", None: ""}[r.get("met")]]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", default=",".join(SUITES), help=f"comma-separated suites: {', '.join(SUITES)}")
    parser.add_argument("--stack-args", default="",
                        help="extra arguments for `python -m local_stack dev`, for every suite's stack "
                             "(e.g. \"--max-concurrency 4\" or \"--parameter-overrides Key=Value\")")
    parser.add_argument("--keep-state", type=Path, metavar="DIR",
                        help="keep each suite's stack state (stack.json, output.log, logs/<Function>.log) "
                             "in DIR/<suite> instead of a temporary directory")
    parser.add_argument("--stack", metavar="NAME",
                        help="a deployed stack (its CloudFormation outputs) instead of local stacks: the http, "
                             "websocket and audio suites against Req 11's p95 budgets")
    parser.add_argument("--region", help="the deployed stack's region (default: boto3's, e.g. AWS_REGION)")
    parser.add_argument("--short", action="store_true", help="with --stack: a few samples of each, a smoke run")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where reports go (default bench/results)")
    parser.add_argument("--before", metavar="REVISION",
                        help="also run each suite, just before its own run, against a stack of that git revision "
                             "(its local stack, template and code): the before and after in one run")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    allowed = DEPLOYED_SUITES if args.stack else tuple(SUITES)
    if args.stack and args.only == parser.get_default("only"):
        chosen = list(DEPLOYED_SUITES)
    unknown = [name for name in chosen if name not in allowed]
    if unknown:
        parser.error(f"unknown suite(s){' for --stack' if args.stack else ''}: {', '.join(unknown)}")
    if args.stack:
        return _deployed(args, tuple(chosen))

    raise_open_files(OPEN_FILES)
    rows: list[dict] = []
    stacks: dict[str, list[str]] = {}
    load_before = os.getloadavg()
    # A fresh stack per suite, not one for the whole run: what a suite leaves behind -- Step Functions
    # executions still running, the table's DynamoDB stream history (moto never trims it, and every
    # TransactWriteItems deep-copies it, so transactions get slower the longer a stack has run),
    # workers grown by a burst -- would otherwise land in the next suite's figures, which would then
    # depend on --only and on the order. It also lets a suite's STACK_ARGS (teardown's listener cap)
    # apply to its own stack only. The price is one stack start (~10-30 s) per suite.
    for name in chosen:
        suite = SUITES[name]
        extra = stack_args(BENCH_STACK_ARGS, getattr(suite, "STACK_ARGS", []), shlex.split(args.stack_args))
        stacks[name] = extra
        print(f"bench: {name} (stack args: {' '.join(extra) or 'none'}) ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        with contextlib.ExitStack() as cleanup:
            if args.keep_state:
                state_dir = args.keep_state.resolve() / name
                state_dir.mkdir(parents=True, exist_ok=True)
            else:
                state_dir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix=f"bench-{name}-")))
            if args.before and getattr(suite, "STACK", True):
                folder = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix=f"bench-{name}-before-")))
                tree = revision_tree(args.before, folder / "tree")
                if hasattr(suite, "prepare_before"):
                    suite.prepare_before(args.before, tree)
                rows += [r | {"measure": f"[{args.before}] {r['measure']}", "goal": "", "met": None}
                         for r in _run_suite(name, suite, folder / "state", extra, tree)]
            rows += _run_suite(name, suite, state_dir, extra)
        print(f"bench: {name} done in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)

    meta = {"suites": chosen, "stack_args": stacks, "before": args.before,
            # A shared or busy machine shows here: the 1-minute load average before and after the run.
            "loadavg_before": [round(x, 2) for x in load_before]}
    return report(rows, meta, args.results)


def _run_suite(name: str, suite, state_dir: Path, extra: list[str], root: Path = ROOT) -> list[dict]:
    try:
        if getattr(suite, "STACK", True):
            with running_stack(state_dir, *extra, root=root) as (info, _):
                return suite.run(info)
        return suite.run(None)
    except Exception as exc:  # noqa: BLE001 - one broken suite must not cost the others' figures
        traceback.print_exc()
        return [{"measure": f"{name}: FAILED ({type(exc).__name__}: {(str(exc).splitlines() or [""])[0][:120]})",
                 "met": False}]


def report(rows: list[dict], meta: dict, results: Path) -> int:
    """Prints the table, saves it (Markdown and JSON) in `results`; 1 if a goal was missed."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    table = markdown(rows)
    meta = {"when": stamp, "python": platform.python_version(), "machine": platform.machine(),
            "cpus": os.cpu_count(), **meta, "loadavg_after": [round(x, 2) for x in os.getloadavg()]}
    if "stack" in meta:
        table += f"\n\nDeployed stack {meta['stack']} ({meta['region']}), measured from this machine."
    if meta.get("before"):
        table += (f"\n\nRows marked [{meta['before']}]: the same suite against a stack of revision {meta['before']} "
                  f"(its local stack, template and code), run just before this checkout's.")
    if "loadavg_before" in meta:
        table += (f"\n\n{meta['cpus']} CPUs; load average (1/5/15 min) "
                  f"{' / '.join(map(str, meta['loadavg_before']))} before, "
                  f"{' / '.join(map(str, meta['loadavg_after']))} after.")
    results.mkdir(parents=True, exist_ok=True)
    for name in (f"report-{stamp}", "latest"):
        (results / f"{name}.md").write_text(f"# Benchmark report {stamp}\n\n{table}\n")
        (results / f"{name}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(table)
    return 0 if all(r.get("met") is not False for r in rows) else 1


def _deployed(args: argparse.Namespace, chosen: tuple[str, ...]) -> int:
    try:
        with deployed_stack(args.stack, args.region) as info:
            print(f"bench: {', '.join(chosen)} against stack {args.stack} ({info['region']}) ...",
                  file=sys.stderr, flush=True)
            rows = deployed.run(info, chosen, short=args.short)
    except DeployedStackError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    return report(rows, {"stack": args.stack, "region": info["region"], "suites": list(chosen),
                         "short": args.short}, args.results)


if __name__ == "__main__":
    sys.exit(main())
