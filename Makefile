# The two commands a developer needs: `make dev` (the whole service locally,
# no Docker, no AWS account) and `make test`. Both install what they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Python 3.13 (the Lambda runtime): on PATH, or installed with pyenv. A pyenv
# shim for an unselected version exists but fails, so run it to be sure.
PYENV_ROOT ?= $(or $(shell pyenv root 2>/dev/null),$(HOME)/.pyenv)
PYTHON313 ?= $(or $(shell python3.13 -c 'import sys; print(sys.executable)' 2>/dev/null),$(lastword $(wildcard $(PYENV_ROOT)/versions/3.13*/bin/python3.13)))
VENV := .venv
TOOLS := .tools
TOOLS_CHECKOV := .tools-checkov
PY := $(VENV)/bin/python
# The browser client and console (web/): pinned npm packages, built into web/dist/console.
WEB := web
CONSOLE := $(WEB)/dist/console/index.html
WEB_SOURCES := $(shell find $(WEB)/src $(WEB)/console -type f 2>/dev/null) $(WEB)/vite.config.ts $(WEB)/tsconfig.json
NODE_OK = $(shell node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a==20&&b>=19)?0:1)' 2>/dev/null && echo yes)
export SAM_CLI_TELEMETRY := 0

# `make token USER=bob`; without USER= on the command line, alice.
TOKEN_USER := $(if $(filter command line,$(origin USER)),$(USER),alice)

.PHONY: help dev test test-deployed token invoke bench check-template console web-test browser clean

help:
	@echo "make dev                      run the service locally (HTTP API on :3000)"
	@echo "make test                     unit, handler, end-to-end, browser and template tests"
	@echo "make console                  build the speaker and listener pages (web/dist/console)"
	@echo "make web-test                 type-check and unit-test the browser client (web/)"
	@echo "make token [USER=bob]         print a fresh ID token from the local Cognito"
	@echo "make invoke FUNCTION=GetSessionFunction EVENT=events/get_session.json"
	@echo "make test-deployed STACK=name [REGION=r]  end-to-end tests against a deployed stack"
	@echo "make bench                    benchmarks (see bench/README.md); ARGS=\"--stack name\": a deployed stack"
	@echo "make check-template           cfn-lint, checkov, sam validate --lint, sam build"

$(VENV)/.installed: requirements/dev.txt
	@test -n "$(PYTHON313)" || { echo "python3.13 not found on PATH or under pyenv"; exit 1; }
	$(PYTHON313) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	@touch $@

# The SAM CLI pins its own boto3, so it lives in a virtualenv of its own.
$(TOOLS)/.installed: requirements/sam.txt
	@test -n "$(PYTHON313)" || { echo "python3.13 not found on PATH or under pyenv"; exit 1; }
	$(PYTHON313) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check -r requirements/sam.txt
	@touch $@

# checkov pins an older boto3 than both, so it gets a third (fully pinned) one.
$(TOOLS_CHECKOV)/.installed: requirements/checkov.txt
	@test -n "$(PYTHON313)" || { echo "python3.13 not found on PATH or under pyenv"; exit 1; }
	$(PYTHON313) -m venv $(TOOLS_CHECKOV)
	$(TOOLS_CHECKOV)/bin/pip install --quiet --disable-pip-version-check -r requirements/checkov.txt
	@touch $@

$(WEB)/node_modules/.installed: $(WEB)/package.json $(WEB)/package-lock.json
	@test -n "$(NODE_OK)" || { echo "Node.js 20.19 or later (with npm) is needed for web/: install it from https://nodejs.org or your package manager"; exit 1; }
	cd $(WEB) && npm ci --no-audit --no-fund
	@touch $@

$(CONSOLE): $(WEB)/node_modules/.installed $(WEB_SOURCES)
	cd $(WEB) && npm run build

console: $(CONSOLE)

web-test: $(WEB)/node_modules/.installed
	cd $(WEB) && npm run typecheck && npm test

dev: $(VENV)/.installed $(CONSOLE)
	$(PY) -m local_stack dev $(ARGS)

test: $(VENV)/.installed $(TOOLS)/.installed $(TOOLS_CHECKOV)/.installed web-test $(CONSOLE) browser
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# The browser tests drive the machine's Chromium (Debian's package; Playwright downloads none). Run as root
# with apt and none there, this installs it; otherwise the browser tests say how (or set CHROMIUM_PATH).
browser:
	@if [ -z "$${CHROMIUM_PATH:-}" ] && ! command -v chromium >/dev/null 2>&1 \
	    && ! command -v chromium-browser >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Chromium (Debian's package) for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	fi

# The end-to-end suite against a deployed stack, found by its CloudFormation outputs; it creates test
# users in the stack's pool and deletes them afterwards. Tests marked local_only are skipped, with why.
test-deployed: $(VENV)/.installed
	@test -n "$(STACK)" || { echo "usage: make test-deployed STACK=<stack name> [REGION=<region>]"; exit 2; }
	DEPLOYED_STACK="$(STACK)" DEPLOYED_REGION="$(REGION)" $(VENV)/bin/pytest tests/e2e $(PYTEST_ARGS)

token: $(VENV)/.installed
	@$(PY) -m local_stack token $(TOKEN_USER)

invoke: $(VENV)/.installed
	@test -n "$(FUNCTION)" -a -n "$(EVENT)" || { echo "usage: make invoke FUNCTION=GetSessionFunction EVENT=events/get_session.json"; exit 2; }
	@$(PY) -m local_stack invoke $(FUNCTION) -e $(EVENT)

bench: $(VENV)/.installed
	$(PY) -m bench $(ARGS)

check-template: $(VENV)/.installed $(TOOLS)/.installed $(TOOLS_CHECKOV)/.installed
	scripts/check-template.sh

clean:
	rm -rf $(VENV) $(TOOLS) $(TOOLS_CHECKOV) .aws-sam .local .pytest_cache $(WEB)/node_modules $(WEB)/dist
