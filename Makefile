# One entry point. `make setup` builds everything into .venv; `make test` runs every check.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Every extra and the test tools, as pyproject.toml lists them, plus the build tools.
PIP_PACKAGES := maturin types-PyYAML typing_extensions $(shell $(PYTHON) tools/dev_requirements.py)

APT_PACKAGES := docker-registry skopeo podman redis-server
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Peers the tests run beside ocistore, from the Go module proxy (never committed).
PEERS := $(CURDIR)/.peers
DISTRIBUTION3 := $(PEERS)/registry

.PHONY: run setup system-deps peers test test-rust test-python test-docs lint docs dist bench compare clean

# Debian packages the tests run against (the reference registry for differential tests).
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# distribution 3.1.1: the pull-through cache's upstream-is-a-proxy test.
$(DISTRIBUTION3):
	GOBIN=$(PEERS) GOFLAGS=-mod=mod go install github.com/distribution/distribution/v3/cmd/registry@v3.1.1

# Azurite 3.35: the Azure emulator the object-storage tests run on (npm, into .peers/npm).
AZURITE := $(PEERS)/npm/node_modules/.bin/azurite-blob
$(AZURITE):
	mkdir -p $(PEERS)/npm
	cd $(PEERS)/npm && npm install --silent --no-audit --no-fund azurite@3.35.0

# fake-gcs-server 1.56.1: the GCS emulator the object-storage tests run on.
FAKE_GCS := $(PEERS)/fake-gcs-server
$(FAKE_GCS):
	GOBIN=$(PEERS) GOFLAGS=-mod=mod go install github.com/fsouza/fake-gcs-server@v1.56.1

peers: $(DISTRIBUTION3) $(AZURITE) $(FAKE_GCS)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Again whenever pyproject.toml changes, so that a new dependency reaches an existing venv too.
$(VENV)/.installed: pyproject.toml tools/dev_requirements.py | $(PY)
	$(PY) -m pip install --quiet $(PIP_PACKAGES)
	touch $@

# The extension is built for the stable ABI (_core.abi3.so); a per-version build left by an older
# checkout would be imported before it, so it goes.
setup: $(VENV)/.installed
	rm -f python/ocistore/_core.cpython-*.so
	$(VENV)/bin/maturin develop --release --quiet

# One wheel for every CPython >= 3.11 on this platform, and the sdist, into dist/.
dist: $(VENV)/.installed
	$(VENV)/bin/maturin build --release --quiet --out dist
	$(VENV)/bin/maturin sdist --out dist

# The documentation site (mkdocs-material; the API reference from the docstrings and .pyi) into
# site/; --strict makes a broken link or reference an error.
docs: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

# The registry on the local default: filesystem storage in ./data, 127.0.0.1:5000.
run: setup
	$(VENV)/bin/ocistore serve

lint: setup
	cargo fmt --check
	cargo clippy --all-targets --quiet -- -D warnings
	PYO3_PYTHON=$(abspath $(PY)) cargo clippy --all-targets --features python --quiet -- -D warnings
	$(VENV)/bin/ruff check python tests benches
	$(VENV)/bin/ruff format --check python tests benches
	$(VENV)/bin/mypy

# The core without the bindings (the `python` feature): no Python needed.
test-rust:
	cargo test --quiet

test-python: setup system-deps peers
	$(VENV)/bin/pytest -q

test-docs: docs

test: lint test-rust test-docs test-python

bench: setup
	$(VENV)/bin/pytest benches -o python_files='bench_*.py' -p no:cacheprovider --benchmark-only

compare: setup
	$(PY) benches/compare.py

clean:
	rm -rf $(VENV) target dist site
