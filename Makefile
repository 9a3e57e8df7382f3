# Airlock: two commands do all the set-up on a fresh machine.
#   make run   - the gateway with every bundled channel, a local fake Telegram Bot API and the echo agent
#   make test  - venv, Python deps, guest toolchains, guest builds, lint, types, all tests
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.deps-stamp
CHANNELS := build/channels
# Rust channel crates (guest-plugins/<name>, package <name>-channel), built to $(CHANNELS)/<name>.wasm.
# Channel authors: add your crate's directory name here and to `members` in the root Cargo.toml.
RUST_CHANNELS := template-rust slack whatsapp discord feishu wechat wecom

.PHONY: all schema venv guests rust-toolchain rust-guests rust-test test-guests bench-guest wrk browser servers examples-ts run test lint typecheck pytest bench bench-bus clean

all: test

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

guests: $(STAMP) rust-guests
	bash scripts/build-python-guest.sh guest-plugins/telegram $(CHANNELS)/telegram.wasm airlock:channel/interactive-channel

# Prints the route (rustup wasm32 target, else Debian rustc-web + build-std; installs the Debian packages
# when neither is there) and the environment cargo gets.
rust-toolchain:
	bash scripts/rust-toolchain.sh

# Each crate is skipped when its component is newer than every input (scripts/build-rust-guest.sh).
rust-guests: $(STAMP)
	@set -e; for c in $(RUST_CHANNELS); do \
		bash scripts/build-rust-guest.sh guest-plugins/$$c $(CHANNELS)/$$c.wasm; \
	done

test-guests: $(STAMP)
	bash scripts/build-python-guest.sh tests/guests/probe build/test-guests/probe.wasm
	bash scripts/build-python-guest.sh tests/guests/compat build/test-guests/compat.wasm near:agent/sandboxed-channel@0.3.1
	bash scripts/build-rust-guest.sh tests/guests/sender build/test-guests/sender.wasm

# The benchmark's small Rust guest (bench/guests/telegram-min), also used by the bench smoke test.
bench-guest: $(STAMP)
	bash scripts/build-rust-guest.sh bench/guests/telegram-min build/bench/telegram-min.wasm

# wrk drives the HTTP benchmark when it can be installed; otherwise bench/loadgen.py does (slower client).
wrk:
	@command -v wrk >/dev/null 2>&1 || apt-get install -y -q wrk >/dev/null 2>&1 \
		|| { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q wrk >/dev/null 2>&1; } \
		|| echo "wrk could not be installed: the HTTP benchmark uses bench/loadgen.py"

# Debian's chromium for the admin console's browser tests (Playwright drives it through executable_path).
browser:
	bash scripts/install-browser.sh

# Debian's postgresql and redis-server for the state-backend tests (tests/servers.py starts throw-away servers on
# loopback ports in temporary directories; the packages' system services are not used).
servers:
	bash scripts/install-servers.sh

# The capabilities file's JSON Schema, generated from the pydantic models (a test fails when it is stale).
schema: $(STAMP)
	PYTHONPATH=host $(BIN)/python -m airlock.manifest.schema > host/airlock/manifest/capabilities.schema.json

# The TypeScript example agent's compiler (examples/package.json pins typescript and @types/node; the lockfile
# fixes the tree). Skipped with a note when npm is absent: the test that compiles and runs examples/agent.ts
# then skips too, saying why.
examples-ts: examples/node_modules/.stamp

examples/node_modules/.stamp: examples/package.json examples/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix examples --ignore-scripts --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "npm not found: examples/agent.ts is not type-checked (install Node 18+ with npm)"; fi

# The demo (host/airlock_demo) is not part of the installed package: it runs from the checkout.
run: guests
	PYTHONPATH=host $(BIN)/python -m airlock_demo --channels-dir $(CHANNELS)

lint: $(STAMP)
	$(BIN)/ruff check host tests sdk guest-plugins bench

typecheck: $(STAMP)
	$(BIN)/mypy --strict host/airlock host/airlock_demo

pytest: guests test-guests bench-guest browser servers examples-ts
	$(BIN)/pytest -q

rust-test:
	cargo test --workspace --quiet

test: lint typecheck rust-test pytest

# One run on this machine (~5 minutes): the message log on SQLite vs PostgreSQL (+ Redis) first (bench-bus), then
# callback level and HTTP end to end for (a)-(d), workers, RSS, start-up, component sizes; writes BENCHMARKS.md,
# bench/results/chart.png and bench/out/results.json.
bench: guests bench-guest wrk bench-bus
	$(BIN)/python bench/run.py

# The message log on SQLite vs PostgreSQL vs PostgreSQL + Redis (real servers): writes bench/results/bus.md, which
# bench/report.py puts into BENCHMARKS.md (so `make bench` runs it first).
bench-bus: guests servers
	PYTHONPATH=host:bench $(BIN)/python bench/bus.py

clean:
	rm -rf build .mypy_cache .ruff_cache .pytest_cache
