"""`make bench`: every benchmark against a fresh local stack, one report.

Prints a Markdown table and saves it with a JSON copy under bench/results/.
Usage: python -m bench [--only http,websocket,...]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

from local_stack.launcher import running_stack

from . import http_api

RESULTS = Path(__file__).resolve().parent / "results"
SUITES = {"http": http_api.run}


def markdown(rows: list[dict]) -> str:
    lines = ["| measure | n | p50 | p95 | baseline p50 | baseline p95 | ratio p95 | goal | met |",
             "|---|---|---|---|---|---|---|---|---|"]

    def fmt(value, unit=""):
        return "" if value is None else f"{value:.1f}{unit}" if isinstance(value, float) else f"{value}{unit}"

    for r in rows:
        unit = f" {r['unit']}" if r.get("unit") else ""
        lines.append("| " + " | ".join([
            r["measure"], fmt(r.get("n")), fmt(r.get("p50"), unit), fmt(r.get("p95"), unit),
            fmt(r.get("baseline_p50"), unit), fmt(r.get("baseline_p95"), unit),
            "" if r.get("ratio_p95") is None else f"{r['ratio_p95']:.2f}x", r.get("goal", ""),
            {True: "yes", False: "**no**", None: ""}[r.get("met")]]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", default=",".join(SUITES), help=f"comma-separated suites: {', '.join(SUITES)}")
    parser.add_argument("--stack-args", default="", help="extra arguments for `python -m local_stack dev`")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in SUITES]
    if unknown:
        parser.error(f"unknown suite(s): {', '.join(unknown)}")

    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-stack-") as state_dir:
        with running_stack(Path(state_dir), *args.stack_args.split()) as (info, _):
            for name in chosen:
                print(f"bench: {name} ...", file=sys.stderr, flush=True)
                rows += SUITES[name](info)

    stamp = time.strftime("%Y%m%d-%H%M%S")
    table = markdown(rows)
    meta = {"when": stamp, "python": platform.python_version(), "machine": platform.machine(),
            "cpus": __import__("os").cpu_count()}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"report-{stamp}.md").write_text(f"# Benchmark report {stamp}\n\n{table}\n")
    (RESULTS / f"report-{stamp}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    (RESULTS / "latest.md").write_text(f"# Benchmark report {stamp}\n\n{table}\n")
    (RESULTS / "latest.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(table)
    return 0 if all(r.get("met") is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
