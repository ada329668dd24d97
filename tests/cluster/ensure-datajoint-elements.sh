#!/usr/bin/env bash
# ensure-datajoint-elements.sh - what tests/datajoint_elements needs to run DataJoint Elements' pipelines:
#   - the wheels of the Elements (and of element-interface, which three of them import), downloaded from PyPI with
#     `pip download --no-deps` into a cache outside the source tree and checked against their sha256. The runner
#     puts the wheel files themselves on PYTHONPATH (pure Python: they import from the zip), nothing is installed;
#   - a venv of its own, $DJHPC_DATAJOINT_VENVS/elements-0.14, where both runs happen (DataJoint itself, and djhpc
#     through tests/datajoint_suite's name shim): datajoint 0.14.10, djhpc's runtime dependencies, and what the
#     Elements' table modules import at their top: numpy, pandas, scipy, pyopenephys (element-array-ephys's
#     readers), plotly and matplotlib (element-calcium-imaging's report), opencv-python-headless
#     (element-facemap, element-deeplabcut), ruamel.yaml (element-deeplabcut's reader). Not DeepLabCut, Facemap,
#     suite2p, CaImAn, Kilosort or pynwb: only the makes and the NWB export import those, and the runner runs neither.
#     PyMySQL stays below 1.2 (ensure-datajoint-suite.sh says why).
#
# Prints nothing on stdout (ensure-datajoint.sh's stdout is a value); progress goes to stderr.
# Environment (optional):
#   DJHPC_DATAJOINT_ELEMENTS_CACHE  where the wheels are kept (default /var/cache/djhpc-datajoint-elements)
#   DJHPC_DATAJOINT_VENVS           the folder of the venv (default /opt/djhpc-datajoint)
set -euo pipefail

CACHE=${DJHPC_DATAJOINT_ELEMENTS_CACHE:-/var/cache/djhpc-datajoint-elements}
VENV=${DJHPC_DATAJOINT_VENVS:-/opt/djhpc-datajoint}/elements-0.14
PY=$VENV/bin/python
PACKAGES=("datajoint==0.14.10" "pymysql>=1.1,<1.2" jinja2 pyyaml psutil rich numpy pandas scipy pyopenephys plotly
          matplotlib opencv-python-headless ruamel.yaml)
# name==version=sha256 of each wheel (tests/datajoint_elements/run.py checks the same); PyPI never changes a
# released file, so a mismatch is a corrupt or foreign file
WHEELS=(
    "element-lab==0.3.0=1e96cea378df86b37727d7cdcb11cd1b31e2b498ab2a9d268470692e6ba0c55f"
    "element-animal==0.1.8=641a15129cad557d8fe7f850a43f3a563a3c134d97dae50cb7320f5046aea3f7"
    "element-session==0.1.6=090b613253b02b3a1f29bf6f20c68af195d71885faac377a1dc6d5ddbd807636"
    "element-event==0.2.3=b84d74e6c7e48a00e157df5f2764202e632d33d51ccee0f5716f3d48267197dd"
    "element-interface==0.6.1=32810de2b507a97837072463258652eebea584b7b5f811287cdfadd2856ba640"
    "element-array-ephys==0.2.11=8e4f133d6081c9656211906b9353d140fd3a781fe5481660a358d68ab395293e"
    "element-calcium-imaging==0.7.8=63a656d25c2aa721d27b04b06f6b892a3691d462a5b0f65003924c05b75a256b"
    "element-facemap==0.1.7=0c691f6e6acacc3195429a2a610503f626abd5767c2828e3c8f47c5b80a86a64"
    "element-deeplabcut==0.2.8=898273e4b992250ae2b69e428cbd99d3a6d55f568c1e120fe90e3fef895f70cc"
)
say() { printf 'ensure-datajoint-elements: %s\n' "$*" >&2; }

ready() {  # the venv imports DataJoint 0.14.10, PyMySQL 1.1.x, djhpc's dependencies and the Elements' light ones
    "$PY" - <<'PY' >/dev/null 2>&1
import sys, warnings
warnings.simplefilter("ignore")
import jinja2, yaml, psutil, rich, pymysql, numpy, pandas, scipy, pyopenephys, plotly, matplotlib, cv2  # noqa: F401
import ruamel.yaml  # noqa: F401
from importlib.metadata import version
sys.exit(version("datajoint") != "0.14.10" or not version("pymysql").startswith("1.1."))
PY
}

if ready; then
    say "$VENV ready"
else
    say "creating $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$PY" -m pip install -q --disable-pip-version-check "${PACKAGES[@]}" >&2
    ready || { say "FAILED: $VENV does not import what the Elements need"; exit 1; }
fi
mkdir -p "$CACHE"
for entry in "${WHEELS[@]}"; do
    spec=${entry%=*}
    sha=${entry##*=}
    name=${spec%%==*}
    version=${spec#*==}
    file="${name//-/_}-$version-py3-none-any.whl"
    if ! echo "$sha  $CACHE/$file" | sha256sum -c --status 2>/dev/null; then
        say "downloading $file from PyPI"
        rm -f "$CACHE/$file"
        tmp=$(mktemp -d)
        "$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary :all: -d "$tmp" "$spec" >&2
        mv "$tmp/$file" "$CACHE/$file"
        rm -rf "$tmp"
        echo "$sha  $CACHE/$file" | sha256sum -c --status ||
            { say "FAILED: $CACHE/$file does not have sha256 $sha"; rm -f "$CACHE/$file"; exit 1; }
    fi
    say "$file ok in $CACHE"
done
say "ready: $PY"
