# Rackcloud: `make demo` runs the main job on a lab rack, `make test` runs the suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SIM_SOAK_SEEDS ?= 5000

.PHONY: venv test lint demo bench soak clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/pytest -q --durations=15

lint: $(STAMP)
	$(BIN)/ruff check agent tests bench docs/examples plugins
	$(BIN)/ruff format --check agent tests bench docs/examples plugins
	$(BIN)/mypy
	$(BIN)/yamllint --strict .
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/ansible-lint --offline

demo: $(STAMP)
	$(BIN)/python -m agent.demo

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b" >&2; $(BIN)/python $$b || exit 1; done

soak: $(STAMP)
	$(BIN)/pytest -q -m soak tests/raft
	$(BIN)/python -m agent.sim --seeds $(SIM_SOAK_SEEDS) --jobs 2

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .rack-lab
