# Two commands do all set-up: `make lab` opens the course, `make test` runs every test.
# Both create .venv if it is missing and install the course with its extras.
# CI sets TORCH=torch==2.13.0 so the venv gets that build before anything else asks for torch.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?=
PYTEST_ARGS ?=

.PHONY: lab test lint exercises bench clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(if $(TORCH),$(BIN)/python -m pip install --quiet "$(TORCH)")
	$(BIN)/python -m pip install --quiet -e ".[dev,pretrained]"
	touch $@

lab: $(BIN)/.installed
	$(BIN)/jupyter lab notebooks/

test: $(BIN)/.installed
	$(BIN)/python -m pytest --nbval-lax tests notebooks solutions $(PYTEST_ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check bertcourse tests benchmarks

exercises: $(BIN)/.installed
	$(BIN)/python -m bertcourse.exercises solutions exercises

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/attention.py

clean:
	rm -rf $(VENV)
