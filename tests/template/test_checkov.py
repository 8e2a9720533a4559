"""checkov finds nothing in template.yaml: every check passes or is suppressed, with its reason.

Runs the pinned checkov from its own virtualenv (.tools-checkov, requirements/checkov.txt; `make test`
installs it), offline: no API key, no policy download, no package scan. A missing checkov is a failure,
not a reason to skip. checkov does not expand Fn::ForEach (it silently leaves out every resource a loop
writes), so it scans the template as CloudFormation receives it: the `template` fixture, written to JSON.
A suppression is `Metadata: checkov: skip: - {id: CKV_AWS_..., comment: "..."}` on the resource
(AWS::Serverless::Function included: checkov reads it before the SAM transform), or, for a check whose
reason holds for every resource of the one type it inspects, an entry of .checkov.yaml's skip-check
under a comment naming those types and the reason.
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
import yaml

# Keys that would send checkov to the Prisma Cloud platform.
PLATFORM_ENV = ("BC_API_KEY", "PRISMA_API_URL", "BC_API_URL", "CKV_API_KEY")
OFFLINE_ENV = {"BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false", "LOG_LEVEL": "WARNING"}
NO_COMMENT = "No comment provided"  # what checkov records for a suppression without one


# The resource types each check inspects, from checkov's own registry.
CHECK_TYPES_SCRIPT = """
import json
import checkov.cloudformation.checks.resource.aws
from checkov.cloudformation.checks.resource.registry import cfn_registry
types = {}
for resource_type, checks in cfn_registry.checks.items():
    for check in checks:
        types.setdefault(check.id, []).append(resource_type)
print(json.dumps(types))
"""


def checkov_venv(repo_root):
    bin_dir = repo_root / ".tools-checkov" / "bin"
    assert (bin_dir / "checkov").is_file(), f"{bin_dir / 'checkov'} missing: run `make test` (or make .tools-checkov/.installed)"
    return bin_dir


@pytest.fixture(scope="module")
def scanned_template(template, tmp_path_factory):
    path = tmp_path_factory.mktemp("checkov") / "template.expanded.json"
    path.write_text(json.dumps(template, indent=1), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def scan(repo_root, scanned_template):
    env = {k: v for k, v in os.environ.items() if k not in PLATFORM_ENV} | OFFLINE_ENV
    result = subprocess.run(
        [str(checkov_venv(repo_root) / "checkov"), "--config-file", ".checkov.yaml", "--file", str(scanned_template),
         "--framework", "cloudformation", "--skip-download", "--compact", "--output", "json"],
        cwd=repo_root, env=env, capture_output=True, text=True, timeout=240, check=False,
    )
    # 0: nothing failed, 1: something failed; anything else is a crash.
    assert result.returncode in (0, 1), f"checkov exited {result.returncode}\n{result.stderr[-5000:]}"
    report = json.loads(result.stdout)
    assert isinstance(report, dict) and report["check_type"] == "cloudformation", result.stdout[:2000]
    return report


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_checkov_finds_nothing_unsuppressed_in_the_template(scan, template, repo_root, capsys):
    summary = scan["summary"]
    with capsys.disabled():
        print(f"\ncheckov {summary['checkov_version']} on template.yaml: passed {summary['passed']}, "
              f"failed {summary['failed']}, skipped {summary['skipped']}, resources {summary['resource_count']}")

    pinned = re.search(r"^checkov==(\S+)$", (repo_root / "requirements" / "checkov.txt").read_text(), re.MULTILINE)
    assert pinned and summary["checkov_version"] == pinned.group(1), "not the pinned checkov"
    assert summary["parsing_errors"] == 0
    # Every resource CloudFormation will create was read, those Fn::ForEach writes included.
    assert summary["resource_count"] == len(template["Resources"])
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


def template_wide_skips(repo_root) -> list[tuple[str, list[str], str]]:
    """(check ID, resource types, reason) of each .checkov.yaml skip-check entry, from the comment above it."""
    text = (repo_root / ".checkov.yaml").read_text(encoding="utf-8")
    entries = re.findall(r"((?:^  # .*\n)+)^  - (CKV_\w+)$", text, re.MULTILINE)
    assert [check for _, check in entries] == yaml.safe_load(text)["skip-check"], "an entry without its comment"
    skips = []
    for comment, check in entries:
        types, _, reason = " ".join(line.strip().removeprefix("# ") for line in comment.splitlines()).partition(" - ")
        skips.append((check, sorted(types.split(", ")), reason))
    return skips


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_each_template_wide_skip_names_the_only_resource_types_its_check_inspects_and_why(repo_root):
    result = subprocess.run([str(checkov_venv(repo_root) / "python"), "-c", CHECK_TYPES_SCRIPT],
                            capture_output=True, text=True, timeout=100, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    inspected = json.loads(result.stdout)
    skips = template_wide_skips(repo_root)
    assert skips
    for check, types, reason in skips:
        assert types == sorted(inspected[check]), f"{check} inspects {inspected[check]}, .checkov.yaml says {types}"
        assert len(reason) > 40, f"{check}: no reason"
