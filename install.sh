#!/usr/bin/env bash
# One-command install of panorama-cli from this checkout. Run ./install.sh --help.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: ./install.sh [--dev] [--help]

  (default)  Install panorama-cli (non-editable, with the 'samples' extra that
             init-project --sample face-blur needs, and the 'gi' extra (PyGObject) that
             serve's RTSP out needs when its Debian build packages are there; else it
             names them) into its own venv at
             ${PANORAMA_CLI_HOME:-~/.local/share/panorama-cli}/venv and symlink the
             `panorama-cli` command into ${PANORAMA_CLI_BIN:-~/.local/bin}
             (/usr/local/bin instead when run as root and that is on PATH).
  --dev      Create ./.venv in the repository with `pip install -e '.[test]'`
             (the project, editable, plus pytest, hypothesis, ruff, moto); names (and as
             root installs) the Debian packages PyGObject builds against.
  -h, --help Show this help.

Re-running is safe: the venv is reused and the install upgraded. pip runs --quiet (a few
[install] lines; pip's errors are still shown); PIP_VERBOSE=1 shows everything.
Environment: PYTHON (default python3, must be >= 3.10), PANORAMA_CLI_HOME, PANORAMA_CLI_BIN.
Network: PyPI only (through pip).
EOF
}

say() { printf '[install] %s\n' "$*"; }
die() { printf '[install] ERROR: %s\n' "$*" >&2; exit 1; }

mode=user
for arg in "$@"; do
    case "$arg" in
        --dev) mode=dev ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $arg" ;;
    esac
done

repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
python=${PYTHON:-python3}

# ---------------------------------------------------------------- Python >= 3.10 with venv
command -v "$python" >/dev/null 2>&1 \
    || die "'$python' not found; install Python >= 3.10 or set PYTHON=/path/to/python3"
if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' >/dev/null 2>&1; then
    found=$("$python" --version 2>&1 | head -n 1 || true)
    die "panorama-cli needs Python >= 3.10, but '$python' is ${found:-unusable}; set PYTHON=/path/to/python3.10+"
fi
"$python" -c 'import venv, ensurepip' >/dev/null 2>&1 \
    || die "'$python' cannot create virtual environments (on Debian/Ubuntu: apt-get install python3-venv)"
say "using $("$python" -c 'import sys; print(sys.executable, "(Python %d.%d.%d)" % sys.version_info[:3])')"

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
# pip --quiet prints warnings and errors only; PIP_VERBOSE=1 (pip's own variable) for all
pip_quiet=(--quiet --progress-bar off)
[[ -n ${PIP_VERBOSE:-} ]] && pip_quiet=(--progress-bar off)

make_venv() { # $1 = venv dir; reuse it when healthy, (re)create otherwise
    local venv=$1
    if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c 'import sys, pip; sys.exit(0 if sys.version_info >= (3, 10) else 1)' >/dev/null 2>&1; then
        say "reusing venv $venv"
    else
        [[ -e "$venv" ]] && say "recreating broken venv $venv"
        rm -rf -- "$venv"
        mkdir -p -- "$(dirname -- "$venv")"
        say "creating venv $venv"
        "$python" -m venv -- "$venv"
    fi
    "$venv/bin/python" -m pip install "${pip_quiet[@]}" --upgrade pip
}

# PyGObject (in the test extras) builds from source against these Debian/Ubuntu packages.
PYGOBJECT_APT="pkg-config libgirepository1.0-dev libcairo2-dev gir1.2-gstreamer-1.0 python3-dev"
# serve's RTSP out at run time: gst-rtsp-server's typelib and the x264 encoder.
RTSP_APT="gir1.2-gst-rtsp-server-1.0 gir1.2-gst-plugins-base-1.0 gstreamer1.0-plugins-ugly"

if [[ $mode == dev ]]; then
    if ! pkg-config --exists girepository-1.0 cairo 2>/dev/null; then
        say "PyGObject needs system packages; run first: sudo apt-get install -y $PYGOBJECT_APT"
        if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
            say "installing them (root): apt-get install -y $PYGOBJECT_APT"
            # shellcheck disable=SC2086  # a list of package names
            DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $PYGOBJECT_APT \
                || say "apt-get install failed (try apt-get update first); pip may fail on PyGObject"
        fi
    fi
    venv="$repo/.venv"
    make_venv "$venv"
    say "pip install -e '.[test]' (editable, with test tools)"
    (cd -- "$repo" && "$venv/bin/python" -m pip install "${pip_quiet[@]}" --upgrade -e '.[test]')
    "$venv/bin/python" -c 'import panorama_cli' || die "the editable install does not import"
    say "done: dev environment in $venv"
    say "run the tests with: .venv/bin/python -m pytest"
    exit 0
fi

# ---------------------------------------------------------------- user install
home=${PANORAMA_CLI_HOME:-$HOME/.local/share/panorama-cli}
venv="$home/venv"
make_venv "$venv"
extras=samples
if pkg-config --exists girepository-1.0 cairo 2>/dev/null; then
    extras=samples,gi  # PyGObject builds here: serve's RTSP out works
else
    say "serve's RTSP out needs PyGObject, which builds against system packages: install"
    say "  sudo apt-get install -y $PYGOBJECT_APT $RTSP_APT"
    say "then run ./install.sh again (until then serve starts with RTSP out off)"
fi
say "pip install $repo[$extras] (non-editable; samples: onnx for face-blur; gi: PyGObject)"
if ! "$venv/bin/python" -m pip install "${pip_quiet[@]}" --upgrade -- "$repo[$extras]"; then
    [[ $extras == samples ]] && die "pip install failed"
    say "pip install with the gi extra (PyGObject) failed; again without it (RTSP out off)"
    "$venv/bin/python" -m pip install "${pip_quiet[@]}" --upgrade -- "$repo[samples]" \
        || die "pip install failed (its errors are above)"
fi
[[ -x "$venv/bin/panorama-cli" ]] || die "the install did not create $venv/bin/panorama-cli"
if [[ $extras == *gi* ]] && ! "$venv/bin/python" -c '
import gi
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GstRtspServer' >/dev/null 2>&1; then
    say "PyGObject is in; RTSP out also needs: sudo apt-get install -y $RTSP_APT"
fi

on_path() { [[ ":$PATH:" == *":$1:"* ]]; }
if [[ -n ${PANORAMA_CLI_BIN:-} ]]; then
    bin=$PANORAMA_CLI_BIN
    why="PANORAMA_CLI_BIN"
elif [[ $EUID -eq 0 ]] && on_path /usr/local/bin; then
    bin=/usr/local/bin
    why="running as root and /usr/local/bin is on PATH"
else
    bin="$HOME/.local/bin"
    why="default for a user install"
fi
mkdir -p -- "$bin"
link="$bin/panorama-cli"
if [[ -e "$link" || -L "$link" ]] && [[ ! -L "$link" ]]; then
    die "$link exists and is not a symlink; remove it or set PANORAMA_CLI_BIN"
fi
ln -sfn -- "$venv/bin/panorama-cli" "$link"
say "linked $link -> $venv/bin/panorama-cli ($why)"

"$link" --help >/dev/null || die "$link --help failed"
say "done: $("$link" --version 2>/dev/null || echo panorama-cli) installed"
if ! on_path "$bin"; then
    say "NOTE: $bin is not on your PATH; add it, e.g.: export PATH=\"$bin:\$PATH\""
fi
