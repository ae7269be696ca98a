# chimeraforge tasks. `just --list` shows them all.

set shell := ["bash", "-euo", "pipefail", "-c"]

bin := "target/release/chimeraforge"

# List recipes.
default:
    @just --list

# Build the release binary with every backend.
build:
    cargo build --release

# The test suite: every crate, every backend, each criterion bench run once on small inputs (the README's test command; .ci/run calls the same).
test:
    cargo test --workspace --all-targets

# Lints as CI runs them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Before pushing: the lints, the test suite, and the Python tests when .venv-py exists (scripts/python-env.sh creates it).
check: lint test
    #!/usr/bin/env bash
    set -euo pipefail
    if [ -x .venv-py/bin/python ]; then
        .venv-py/bin/python -m pytest python/tests -q
    else
        echo "python tests skipped: no .venv-py (bash scripts/python-env.sh creates it)"
    fi

# Every Rust backend (each is its cargo feature, the BACKEND of `just bench`), from the backend table.
backends:
    cargo run -q -p chimeraforge -- backends --features

# Run CONFIG (default: the quickstart on the embedded simulator) across every backend, side by side.
bench-all CONFIG="bench-configs/quickstart.toml" *ARGS: build
    {{bin}} bench {{CONFIG}} --backends all {{ARGS}}

# Run CONFIG on one backend (one of `just backends`), from a binary built with only that backend's feature.
bench BACKEND CONFIG="bench-configs/quickstart.toml" *ARGS:
    cargo build --release --no-default-features --features {{BACKEND}} --target-dir target/only-{{BACKEND}}
    target/only-{{BACKEND}}/release/chimeraforge bench {{CONFIG}} --backends {{BACKEND}} {{ARGS}}

# Serve the simulator on PORT (e.g. `just sim 11434 gpu-like shared:100`).
sim PORT="11434" PROFILE="quickstart" DEVICE="ideal": build
    {{bin}} sim --port {{PORT}} --profile {{PROFILE}} --device {{DEVICE}}

# Install llama-server and the Gemma 3 270M model (cached; the first time builds llama-server:
# 13.5 and 16.5 minutes measured on 2 cores, December 2026).
install-real:
    bash scripts/real-engine.sh install

# Start two llama-server instances on 127.0.0.1:11434 and :11435.
serve-real: install-real
    bash scripts/real-engine.sh serve

# Stop exactly the llama-server processes serve-real started.
stop-real:
    bash scripts/real-engine.sh stop

# Build, serve the two real llama.cpp servers, run the real config across all backends, stop them.
e2e-real CONFIG="bench-configs/real-gemma3-270m.toml" OUT="": build serve-real
    #!/usr/bin/env bash
    set -euo pipefail
    trap 'bash scripts/real-engine.sh stop' EXIT
    out="{{OUT}}"
    {{bin}} bench {{CONFIG}} --backends all ${out:+--out "$out"}

# The instrument's own cost on every backend (Rust, and Python when installed) and the floor client, under keep-alive and fresh connections: TTFT bias and the simulator's share of it, ideal-device efficiency, ingest ceiling, memory per agent (writes results/<stamp>-overhead/overhead.md). ARGS: --quick, --pin, --probes a,b, --connection keep-alive|fresh.
bench-overhead *ARGS: build
    {{bin}} overhead --backends all {{ARGS}}

# Issue 17's targets: `ideal-64` on the floor and every backend under keep-alive and fresh, shared CPUs then `--pin` (about 10 minutes on 2 cores); writes OUT (default results/<stamp>-overhead-targets/) and prints both targets tables.
overhead-targets OUT="": build
    bash scripts/overhead-targets.sh {{bin}} "{{OUT}}"

# Codec throughput (tokens/s parsed) for Ollama NDJSON and OpenAI SSE, criterion.
bench-codecs:
    cargo bench -p chimeraforge-core --bench codecs

# Scaling sweep: seed agents replicated to N = 1..64 on fixed-profile simulators.
bench-scaling *ARGS: build
    {{bin}} bench bench-configs/scaling.toml --backends all {{ARGS}}
