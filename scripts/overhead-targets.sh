#!/usr/bin/env bash
# overhead-targets.sh: the measurement behind issue 17's targets in docs/backends.md, in one
# go: `ideal-64` (64 agents x 1 call of 200 ms on the `fixed` simulator, 2 runs) on the floor
# and every backend of the binary, under keep-alive and then fresh, first with server and
# clients sharing every CPU, then with `--pin`. Each half writes its own results directory
# and prints its targets table (the "Keep-alive targets" section of its overhead.md).
#
# Usage: scripts/overhead-targets.sh [BIN] [OUT]
#   BIN  the chimeraforge binary (default target/release/chimeraforge; build it first)
#   OUT  results directory (default results/<UTC stamp>-overhead-targets); gets shared/ and
#        pinned/, each an `overhead` results directory, and machine.txt (the machine's state)
set -euo pipefail

bin="${1:-target/release/chimeraforge}"
out="${2:-}"
if [ -z "$out" ]; then
    out="results/$(date -u +%Y%m%dT%H%M%SZ)-overhead-targets"
fi
if [ ! -x "$bin" ]; then
    echo "error: no chimeraforge binary at $bin" >&2
    echo "  hint: cargo build --release (or pass the binary as the first argument)" >&2
    exit 2
fi
mkdir -p "$out"
# The machine the figures come from: what the docs must state beside them.
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "cpus: $(nproc) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'))"
    echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$out/machine.txt"

show_targets() {
    sed -n '/^### Keep-alive targets/,/^### Ideal-device efficiency/p' "$1/overhead.md" | sed '$d'
}

"$bin" overhead --backends all --probes ideal-64 --out "$out/shared"
echo "load average after shared: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/machine.txt"
"$bin" overhead --backends all --probes ideal-64 --pin --out "$out/pinned"
echo "load average after pinned: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/machine.txt"

echo
cat "$out/machine.txt"
for half in shared pinned; do
    echo
    echo "== $half: $out/$half/overhead.md"
    show_targets "$out/$half"
done
