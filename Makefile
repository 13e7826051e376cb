# One command to run the service, one to test it. Both set up what they need first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test test-fast index setup eval bench train-verifier browser clean

serve: $(STAMP)  ## set up, build the index if needed, serve on $RAG_PORT (default 8000)
	$(BIN)/rag index
	exec $(BIN)/rag serve

test: $(STAMP) browser  ## set up and run the whole test suite
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)  ## the unit tier: the edit-test loop (no live servers, subprocesses or browser)
	$(BIN)/python -m pytest -q -m "not slow"

setup: $(STAMP)

# torch first, pinned: an unpinned torch would pull a multi-GB CUDA build. -qq: errors only (no notices about
# this machine's pip configuration, no setuptools notice about editable installs).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -qq --upgrade pip
	$(BIN)/pip install -qq torch==2.13.0
	PYTHONWARNINGS=ignore $(BIN)/pip install -qq -e '.[dev]'
	touch $(STAMP)

# Debian's Chromium for the browser tests (no browser download is possible here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "install Debian's chromium (sudo apt-get install chromium) for the browser tests"; fi; }

index: $(STAMP)
	$(BIN)/rag index

eval: $(STAMP)  ## retrieval quality report (full report under an ignored folder; tracked summary only)
	$(BIN)/rag eval

train-verifier: $(STAMP)  ## retrain the verifier from ../shared/external (seeded; writes rag/assets/verifier/)
	HF_HUB_OFFLINE=1 $(BIN)/python -m eval.train_verifier

bench: $(STAMP)  ## speed benchmarks
	$(BIN)/python eval/bench.py

clean:
	rm -rf $(VENV) index/*.faiss index/*.json index/*.npy index/encoders
