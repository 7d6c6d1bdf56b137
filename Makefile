# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# LiteLLM's proxy, a real peer in the tests, lives in a venv of its own: its pins
# (rich<14 among them) would otherwise move the project's.
LITELLM_VENV ?= .venv-litellm
LITELLM_STAMP := $(LITELLM_VENV)/.installed

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

# llama.cpp builds for this CPU; some virtual machines list AMX but fault on its first use,
# so llama-cpp-python is compiled without AMX (and never taken from a wheel built elsewhere).
ifeq ($(shell uname -m),x86_64)
LLAMA_CMAKE_ARGS := -DCMAKE_C_FLAGS='-mno-amx-tile -mno-amx-int8 -mno-amx-bf16' \
	-DCMAKE_CXX_FLAGS='-mno-amx-tile -mno-amx-int8 -mno-amx-bf16'
endif
# `make setup GPU=cuda` (or vulkan, metal) builds llama.cpp with that GPU backend.
GPU ?=
ifeq ($(GPU),cuda)
LLAMA_CMAKE_ARGS += -DGGML_CUDA=on
else ifeq ($(GPU),vulkan)
LLAMA_CMAKE_ARGS += -DGGML_VULKAN=on
else ifeq ($(GPU),metal)
LLAMA_CMAKE_ARGS += -DGGML_METAL=on
endif

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade 'pip>=25.1'
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
		$(BIN)/python -m pip install --no-cache-dir -c constraints.txt llama-cpp-python
	$(BIN)/python -m pip install -c constraints.txt -e '.[cloud,dev,train,otel]'
	touch $(STAMP)

$(LITELLM_STAMP):
	$(PYTHON) -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/python -m pip install --quiet 'litellm[proxy]==1.108.7'
	touch $(LITELLM_STAMP)

demo: setup
	$(BIN)/relay demo

test: setup $(LITELLM_STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) $(LITELLM_VENV) .pytest_cache .ruff_cache .hypothesis
