#!/usr/bin/env bash
# Create (or refresh) the Python environment of the python-asyncio / python-uvloop backends.
#
#   scripts/python-env.sh            # creates .venv-py in the repository root
#   CHIMERAFORGE_PY_VENV=/some/dir scripts/python-env.sh   # elsewhere (the driver reads the same variable)
#
# Idempotent: when the venv exists and python/requirements.txt has not changed since it was
# installed, it exits at once without touching the network.
# Needs python3.11 (or python3 >= 3.11) and PyPI.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${CHIMERAFORGE_PY_VENV:-$root/.venv-py}"
req="$root/python/requirements.txt"
stamp="$venv/.chimeraforge-requirements"

want="$(sha256sum "$req" | cut -d' ' -f1) $root/python"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    exit 0
fi

py=""
for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1 &&
        "$cand" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
        py="$cand"
        break
    fi
done
if [[ -z "$py" ]]; then
    echo "python-env: need Python 3.11 or newer (python3.11 or python3 on PATH)" >&2
    exit 1
fi

echo "python-env: setting up $venv with $($py --version)" >&2
"$py" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
# Make chimeraforge_py importable from the venv without an install step (like an editable install).
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$root/python" > "$site/chimeraforge_py.pth"
"$venv/bin/python" -c 'import chimeraforge_py, httpx, jsonschema, pytest' \
    || { echo "python-env: the venv at $venv is incomplete" >&2; exit 1; }
echo "$want" > "$stamp"
echo "python-env: ready: $venv/bin/python -m chimeraforge_py child --backend python-asyncio" >&2
