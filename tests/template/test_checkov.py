"""checkov finds nothing in template.yaml: every check passes or is suppressed, with its reason, on its resource.

Runs the pinned checkov from its own virtualenv (.tools-checkov, requirements/checkov.txt; `make test`
installs it), offline: no API key, no policy download, no package scan. A missing checkov is a failure,
not a reason to skip. A suppression is `Metadata: checkov: skip: - {id: CKV_AWS_..., comment: "..."}` on
the resource (AWS::Serverless::Function included: checkov reads it before the SAM transform).
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

# Keys that would send checkov to the Prisma Cloud platform.
PLATFORM_ENV = ("BC_API_KEY", "PRISMA_API_URL", "BC_API_URL", "CKV_API_KEY")
OFFLINE_ENV = {"BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false", "LOG_LEVEL": "WARNING"}
NO_COMMENT = "No comment provided"  # what checkov records for a suppression without one


@pytest.fixture(scope="module")
def scan(repo_root):
    checkov = repo_root / ".tools-checkov" / "bin" / "checkov"
    assert checkov.is_file(), f"{checkov} missing: run `make test` (or make .tools-checkov/.installed)"
    env = {k: v for k, v in os.environ.items() if k not in PLATFORM_ENV} | OFFLINE_ENV
    result = subprocess.run(
        [str(checkov), "--file", "template.yaml", "--framework", "cloudformation", "--skip-download",
         "--compact", "--output", "json"],
        cwd=repo_root, env=env, capture_output=True, text=True, timeout=240, check=False,
    )
    # 0: nothing failed, 1: something failed; anything else is a crash.
    assert result.returncode in (0, 1), f"checkov exited {result.returncode}\n{result.stderr[-5000:]}"
    report = json.loads(result.stdout)
    assert isinstance(report, dict) and report["check_type"] == "cloudformation", result.stdout[:2000]
    return report


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_checkov_finds_nothing_unsuppressed_in_the_template(scan, repo_root, capsys):
    summary = scan["summary"]
    with capsys.disabled():
        print(f"\ncheckov {summary['checkov_version']} on template.yaml: passed {summary['passed']}, "
              f"failed {summary['failed']}, skipped {summary['skipped']}, resources {summary['resource_count']}")

    pinned = re.search(r"^checkov==(\S+)$", (repo_root / "requirements" / "checkov.txt").read_text(), re.MULTILINE)
    assert pinned and summary["checkov_version"] == pinned.group(1), "not the pinned checkov"
    assert summary["parsing_errors"] == 0
    # The SAM resources themselves were scanned, not just the plain CloudFormation ones.
    scanned = {check["resource"].split(".")[0] for kind in ("passed_checks", "skipped_checks")
               for check in scan["results"][kind]}
    assert "AWS::Serverless::Function" in scanned, scanned

    failed = [f"{c['check_id']} {c['resource']} (lines {c['file_line_range']}): {c['check_name']}"
              for c in scan["results"]["failed_checks"]]
    assert summary["failed"] == len(failed) == 0, "checkov findings:\n" + "\n".join(failed)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_every_checkov_suppression_says_why(scan):
    skipped = scan["results"]["skipped_checks"]
    unexplained = [f"{c['check_id']} {c['resource']}" for c in skipped
                   if not (c["check_result"].get("suppress_comment") or "").strip()
                   or c["check_result"]["suppress_comment"].strip() == NO_COMMENT]
    assert not unexplained, f"suppressions without a comment: {unexplained}"
