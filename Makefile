# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint setup protos clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/controlplane demo

test: lint
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
