#!/usr/bin/env bash
# ensure-datajoint.sh - one virtual environment per DataJoint version that the DataJoint-target tests drive
# (tests/test_djtarget.py): DataJoint 0.14.10 and 2.3.5 cannot share one. Each gets djhpc's runtime
# dependencies; djhpc itself comes from the checkout on PYTHONPATH, so a venv made for one clone serves any.
#
# Then tests/cluster/ensure-datajoint-suite.sh (DataJoint's own test suite, for tests/datajoint_suite) and
# tests/cluster/ensure-datajoint-elements.sh (DataJoint Elements' wheels and venv, for tests/datajoint_elements).
# Prints the value for DJHPC_DATAJOINT_PYTHONS ("0.14=/path/bin/python,2=/path/bin/python") on stdout.
# Environment (optional): DJHPC_DATAJOINT_VENVS  where the venvs live (default /opt/djhpc-datajoint)
set -euo pipefail

BASE=${DJHPC_DATAJOINT_VENVS:-/opt/djhpc-datajoint}
DEPS=(jinja2 pyyaml psutil rich)
START_NS=$(date +%s%N)
say() {
    local ms=$(( ($(date +%s%N) - START_NS) / 1000000 ))
    printf 'ensure-datajoint [%d.%03ds] %s\n' $((ms / 1000)) $((ms % 1000)) "$*" >&2
}

ready() {  # ready VENV VERSION: the venv imports that DataJoint and djhpc's dependencies
    "$1/bin/python" - "$2" <<'PY' >/dev/null 2>&1
import sys, warnings
warnings.simplefilter("ignore")
import jinja2, yaml, psutil, rich, pymysql, numpy  # noqa: F401
from importlib.metadata import version
sys.exit(version("datajoint") != sys.argv[1])
PY
}

pythons=()
for spec in "0.14=0.14.10" "2=2.3.5"; do
    label=${spec%%=*}
    want=${spec#*=}
    venv=$BASE/$label
    if ready "$venv" "$want"; then
        say "DataJoint $want ready in $venv"
    else
        say "creating $venv with DataJoint $want"
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/python" -m pip install -q --disable-pip-version-check "datajoint==$want" "${DEPS[@]}"
        ready "$venv" "$want" || { say "FAILED: $venv does not import DataJoint $want"; exit 1; }
    fi
    pythons+=("$label=$venv/bin/python")
done
# DataJoint 0.14's own test suite (tests/datajoint_suite): its sdists and its venv; prints only on stderr
"$(dirname "$(readlink -f "$0")")/ensure-datajoint-suite.sh"
# DataJoint Elements as public pipelines (tests/datajoint_elements): their wheels and venv; prints only on stderr
"$(dirname "$(readlink -f "$0")")/ensure-datajoint-elements.sh"
(IFS=,; echo "${pythons[*]}")
