# Two commands do all set-up: `make lab` opens the course, `make test` runs every test.
# Both create .venv if it is missing and install the course with its extras.
# CI sets TORCH=torch==2.13.0 so the venv gets that build before anything else asks for torch.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# TORCH: how PyTorch gets into .venv, before the course asks for it.
#   empty (default)  pip's default build (CUDA on Linux x86-64), unless the venv already has a torch
#   cpu              the CPU-only build from PyTorch's own CPU index (a few hundred MB, no CUDA libraries)
#   anything else    pip arguments, e.g. TORCH=torch==2.13.0 or TORCH="torch --index-url URL"
TORCH ?=
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_PIP_ARGS := $(if $(filter cpu,$(TORCH)),torch --index-url $(TORCH_CPU_INDEX),$(TORCH))
# VENV_ARGS=--system-site-packages lets .venv use the torch already installed for $(PYTHON).
VENV_ARGS ?=
# LAB_ARGS: extra arguments for `jupyter lab` (--no-browser, --port=8889, ...); root gets --allow-root.
LAB_ARGS ?=
ROOT_ARGS := $(if $(filter 0,$(shell id -u)),--allow-root)
# make grade NB=exercises/01_attention.ipynb [GRADE_ARGS=--json]
NB ?=
GRADE_ARGS ?=
PYTEST_ARGS ?=

.PHONY: lab test grade lint exercises bench bench-throughput bench-gpu compare book clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV_ARGS) $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(if $(TORCH_PIP_ARGS),$(BIN)/python -m pip install --quiet $(TORCH_PIP_ARGS))
	$(BIN)/python -m pip install --quiet -e ".[dev,pretrained,instructor,book]"
	touch $@

# The lab opens at the repository root (notebooks/ and exercises/ both in the file browser) on chapter 00,
# with the venv first on PATH so `python` in Lab's terminal is the course's.
lab: $(BIN)/.installed
	PATH="$(abspath $(BIN)):$$PATH" VIRTUAL_ENV="$(abspath $(VENV))" \
	  $(BIN)/jupyter lab --ServerApp.root_dir="$(CURDIR)" $(ROOT_ARGS) $(LAB_ARGS) notebooks/00_welcome.ipynb

test: $(BIN)/.installed
	$(BIN)/python -m pytest --nbval-lax tests notebooks solutions $(PYTEST_ARGS)

grade: $(BIN)/.installed
	@test -n "$(NB)" || { echo 'usage: make grade NB=exercises/01_attention.ipynb [GRADE_ARGS=--json]' >&2; exit 2; }
	$(BIN)/python -m bertcourse.grade $(NB) $(GRADE_ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check bertcourse tests benchmarks book
	$(BIN)/ruff format --check bertcourse tests benchmarks book

exercises: $(BIN)/.installed
	$(BIN)/python -m bertcourse.grading.exercises solutions exercises

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/attention.py

# make bench-throughput: pre-training steps of ELMo, GPT and BERT against Hugging Face and a large matmul, and
# KV-cache decoding (README, "Throughput"); BENCH_ARGS="--rounds 5 --steps 3" for a quicker, noisier run.
BENCH_ARGS ?=
bench-throughput: $(BIN)/.installed
	$(BIN)/python benchmarks/throughput.py $(BENCH_ARGS)

# make bench-gpu: on a CUDA machine, the engine's tokens/s and MFU at bf16 at the full preset's sizes, and 1 vs 2
# processes under torchrun with two GPUs (README, "Throughput"); BENCH_ARGS as above, e.g. "--models bert".
bench-gpu: $(BIN)/.installed
	$(BIN)/python benchmarks/gpu_throughput.py $(BENCH_ARGS)

# make compare [PRESET=tiny|course|full|label-budget SEEDS=N]: chapter 08's head-to-head experiment; the course preset with
# 5 seeds is what notebooks/results/compare-course holds (a rerun resumes from the runs it finds there).
PRESET ?= course
SEEDS ?= 5
compare: $(BIN)/.installed
	$(BIN)/python -m bertcourse.compare --preset $(PRESET) --seeds $(SEEDS) --out notebooks/results/compare-$(PRESET)

# make book: the course as a static website, read from the committed outputs (never executed), offline; open
# build/book/html/index.html. Sphinx + MyST-NB + sphinx-book-theme from the `book` extra; configuration in book/.
BOOK_DIR ?= build/book
book: $(BIN)/.installed
	$(BIN)/python -m sphinx -W --keep-going -q -c book -d $(BOOK_DIR)/doctrees -b html . $(BOOK_DIR)/html
	@echo "The book: $(BOOK_DIR)/html/index.html"

clean:
	rm -rf $(VENV)
