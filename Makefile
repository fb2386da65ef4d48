# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint setup protos clean browser

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP) browser

# The dashboard's tests drive Debian's Chromium through Playwright (Playwright's own browser download does not
# work here). Installed when missing and we may (root with apt-get, as in CI); otherwise say what to do.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else \
			echo "chromium is missing: install Debian's chromium package (the dashboard tests need it)" >&2; exit 1; \
		fi; }

demo: $(STAMP)
	$(BIN)/controlplane demo

test: lint browser
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy controlplane
	$(BIN)/cfn-lint deploy/cloudformation/*.yaml
	$(BIN)/hadolint deploy/docker/*.Dockerfile
	$(BIN)/python deploy/iam_policy.py

# Regenerate the Python modules of our own .proto files (committed, so users need no protoc).
protos: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -Iprotos --python_out=. --grpc_python_out=. --pyi_out=. \
		$(shell cd protos && find . -name '*.proto' | sed 's|^\./||')

clean:
	rm -rf $(VENV) build dist *.egg-info
