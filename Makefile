# Two commands on a fresh machine with only Python: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
DEMO_DIR ?= demo-output
PYTEST_ARGS ?= -n 2

.PHONY: demo test venv clean bench viewer-assets docs

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	rm -f $(VENV)/.installed-* && touch $@

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

demo: venv
	$(PY) -m astrostatlearn.demo --out $(DEMO_DIR)

# The documentation site (Sphinx, numpydoc, a sphinx-gallery tutorial run at build time), offline,
# warnings as errors; open docs/_build/html/index.html.
docs: venv
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html

bench: venv
	$(PY) benchmarks/bench_simulate.py

# Re-vendor the viewer's JavaScript from the npm registry (exact version and tarball hash from
# viewer/package-lock.json) into src/astrostatlearn/view/static/openseadragon; needs Node.js and npm.
viewer-assets:
	cd viewer && npm ci --ignore-scripts --no-audit --no-fund && $(PYTHON) vendor.py

clean:
	rm -rf $(DEMO_DIR) .pytest_cache
