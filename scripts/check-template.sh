#!/usr/bin/env bash
# Check template.yaml: cfn-lint, checkov (offline), `sam validate --lint`, then
# `sam build` (arm64 layer wheels come from PyPI; no AWS account or Docker needed).
# Exits non-zero on any lint or checkov finding (a checkov finding may be
# suppressed on its resource, with its reason: Metadata.checkov.skip, or for every
# resource of the one type its check inspects: .checkov.yaml) or build failure.
#
# Usage: scripts/check-template.sh [BUILD_DIR]
#   BUILD_DIR  where to keep the build (default: a temp dir, removed on exit)
# Tools: $SAM (default .tools/bin/sam), $CFN_LINT (default .venv/bin/cfn-lint),
# $CHECKOV (default .tools-checkov/bin/checkov), each falling back to PATH, and
# $PYTHON (default .venv/bin/python, with cfn-lint: the template loader).
# Install SAM CLI with requirements/sam.txt, checkov with requirements/checkov.txt.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export SAM_CLI_TELEMETRY=0

run() {
  echo "+ $*" >&2
  "$@"
}

tool() { # tool NAME PREFERRED_PATH
  if [[ -x "$2" ]]; then echo "$2"
  elif command -v "$1" >/dev/null 2>&1; then command -v "$1"
  else echo "check-template: $1 not found (looked for $2 and on PATH)" >&2; return 1
  fi
}

# sam build's Python workflow needs a working python3.13 on PATH. A pyenv shim
# for a version that is not selected exists but fails, so run it to be sure.
python313_bin() {
  local candidate
  if python3.13 -c '' >/dev/null 2>&1; then
    python3.13 -c 'import os, sys; print(os.path.dirname(sys.executable))'
    return
  fi
  for candidate in "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/3.13*/bin/python3.13; do
    if [[ -x "$candidate" ]]; then dirname "$candidate"; return; fi
  done
  echo "check-template: no python3.13 on PATH or under pyenv" >&2
  return 1
}

sam="$(tool sam "${SAM:-$root/.tools/bin/sam}")"
cfn_lint="$(tool cfn-lint "${CFN_LINT:-$root/.venv/bin/cfn-lint}")"
checkov="$(tool checkov "${CHECKOV:-$root/.tools-checkov/bin/checkov}")"
python="$(tool python3 "${PYTHON:-$root/.venv/bin/python}")"
PATH="$(python313_bin):$PATH"
export PATH

if [[ $# -gt 0 ]]; then
  build_dir="$1"
  mkdir -p "$build_dir"
else
  build_dir="$(mktemp -d "${TMPDIR:-/tmp}/check-template.XXXXXX")"
  trap 'rm -rf "$build_dir"' EXIT
fi

run "$cfn_lint" -- template.yaml
# checkov does not expand Fn::ForEach (it would skip every resource a loop writes): it scans the
# template as CloudFormation receives it, AWS::LanguageExtensions applied by the project's loader.
run "$python" -c 'import json, sys; from local_stack.template import load_yaml
json.dump(load_yaml(sys.stdin.read()), sys.stdout, indent=1)' < template.yaml > "$build_dir/template.expanded.json"
# Offline: no platform API key, no policy download, no package scan. The
# cloudformation framework reads AWS::Serverless::* resources (and Globals).
run env -u BC_API_KEY -u PRISMA_API_URL BC_SKIP_MAPPING=TRUE CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false \
  "$checkov" --config-file .checkov.yaml --file "$build_dir/template.expanded.json" \
  --framework cloudformation --skip-download --compact --quiet
# samconfig.toml turns on --language-extensions (Fn::ForEach) for the sam commands.
run "$sam" validate --lint --template-file template.yaml
run "$sam" build --template-file template.yaml --no-cached \
  --build-dir "$build_dir/build" --cache-dir "$build_dir/cache"
echo "check-template: OK" >&2
