# Two commands on a fresh machine: `make demo` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CLAUDE_CODE_VERSION := 2.1.330
CODEX_VERSION := 0.169.0
GEMINI_CLI_VERSION := 0.61.0
TOOLS := .tools
CHROMIUM := /usr/bin/chromium
CLAUDE := $(TOOLS)/node_modules/.bin/claude
CODEX := $(TOOLS)/node_modules/.bin/codex
GEMINI_CLI := $(TOOLS)/node_modules/.bin/gemini
AGENT_CLIS := $(CLAUDE) $(CODEX) $(GEMINI_CLI)
PYTEST_ARGS ?=

TYPECHECK_TREE := build/typecheck
# Real agents' final messages, labelled (see ../shared/data/README.md); read, never copied here.
QUESTIONS_DATA ?= ../shared/data/agent-final-answers.jsonl

.PHONY: demo test test-fast lint bench chaos install dev agents claude clean

demo: $(VENV)/.installed
	$(BIN)/pa --demo

test: lint $(AGENT_CLIS) $(CHROMIUM)
	CLAUDE_BIN="$(abspath $(CLAUDE))" CODEX_BIN="$(abspath $(CODEX))" GEMINI_CLI_BIN="$(abspath $(GEMINI_CLI))" \
		$(BIN)/python -m pytest $(PYTEST_ARGS)

# Lint, format and types. mypy reads the installed layout (actors/ as agentproxy.actors) from a
# tree of symlinks, since it cannot follow setuptools' package-dir mapping.
lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	rm -rf $(TYPECHECK_TREE) && mkdir -p $(TYPECHECK_TREE)
	cp -rs $(abspath agentproxy) $(TYPECHECK_TREE)/agentproxy
	ln -s $(abspath actors) $(TYPECHECK_TREE)/agentproxy/actors
	cd $(TYPECHECK_TREE) && $(abspath $(BIN))/mypy --config-file $(abspath pyproject.toml) -p agentproxy

# Everything but the tests that need the npm CLIs.
test-fast: $(VENV)/.dev-installed
	$(BIN)/python -m pytest -m "not claude_cli and not codex_cli and not gemini_cli" $(PYTEST_ARGS)

# The long loops: random kill -9 points among remote workers (make test runs 20 of them).
chaos: $(VENV)/.dev-installed $(CLAUDE)
	AGENTPROXY_CHAOS_ROUNDS=100 CLAUDE_BIN="$(abspath $(CLAUDE))" $(BIN)/python -m pytest -s -p no:randomly \
		tests/e2e/test_remote_workers_e2e.py -k random_kill_points

# Every figure is printed; the target fails at the end if any of them missed its target.
bench: $(VENV)/.dev-installed $(AGENT_CLIS)
	@missed=0; export CLAUDE_BIN="$(abspath $(CLAUDE))" CODEX_BIN="$(abspath $(CODEX))" \
		GEMINI_CLI_BIN="$(abspath $(GEMINI_CLI))"; \
	$(BIN)/python tests/bench/run.py || missed=1; \
	$(BIN)/python tests/bench/questions.py $(QUESTIONS_DATA) tests/data/final_answers.jsonl || missed=1; \
	$(BIN)/python tests/bench/checks.py || missed=1; \
	$(BIN)/python tests/bench/events.py || missed=1; \
	$(BIN)/python tests/bench/parallel.py || missed=1; \
	$(BIN)/python tests/bench/agents.py || missed=1; \
	$(BIN)/python tests/bench/bundles.py || missed=1; \
	$(BIN)/python tests/bench/remote.py || missed=1; \
	$(BIN)/python tests/bench/bridge.py || missed=1; \
	$(BIN)/python tests/bench/server.py || missed=1; \
	$(BIN)/python tests/bench/telemetry.py || missed=1; \
	exit $$missed

install: $(VENV)/.installed
dev: $(VENV)/.dev-installed
agents: $(AGENT_CLIS)
claude: agents  # the older name of the same target

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed

# The dashboard's tests drive Debian's chromium (Playwright cannot download its own browser here).
$(CHROMIUM):
	apt-get install -y -q chromium || (apt-get update -q && apt-get install -y -q chromium)

# Pinned: a plain install may resolve an old cached version. One install, so none removes another.
$(AGENT_CLIS) &:
	npm install --no-audit --no-fund --prefix $(TOOLS) @anthropic-ai/claude-code@$(CLAUDE_CODE_VERSION) \
		@openai/codex@$(CODEX_VERSION) @google/gemini-cli@$(GEMINI_CLI_VERSION)
	$(CLAUDE) --version && $(CODEX) --version && $(GEMINI_CLI) --version

clean:
	rm -rf $(VENV) $(TOOLS) build *.egg-info .ruff_cache .mypy_cache
