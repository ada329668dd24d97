#!/usr/bin/env bash
# ensure-datajoint-suite.sh - what tests/datajoint_suite needs to run DataJoint 0.14's own test suite:
#   - the source distributions of datajoint 0.14.10 (its tests/test_*.py) and 0.14.3 (the last 0.14 sdist that
#     also carries tests/conftest.py, the schema*.py modules and tests/data/), downloaded from PyPI with pip into a
#     cache outside the source tree and checked against their sha256;
#   - a venv of its own, $DJHPC_DATAJOINT_VENVS/suite-0.14, where both runs happen (DataJoint itself, and djhpc
#     through the name shim): datajoint 0.14.10 with the packages its tests import, pytest, and djhpc's runtime
#     dependencies. PyMySQL stays below 1.2: from 1.2 on, DataJoint 0.14's default connection (use_tls=None, which
#     asks PyMySQL for TLS) fails on a server without TLS, as the MariaDB here is, instead of falling back.
# Nothing of DataJoint's is kept in this repository: the runner unpacks the sdists into a temporary directory.
#
# Prints nothing on stdout (ensure-datajoint.sh's stdout is a value); progress goes to stderr.
# Environment (optional):
#   DJHPC_DATAJOINT_SUITE_CACHE  where the sdists are kept (default /var/cache/djhpc-datajoint-suite)
#   DJHPC_DATAJOINT_VENVS        the folder of the venv (default /opt/djhpc-datajoint, beside ensure-datajoint.sh's)
set -euo pipefail

CACHE=${DJHPC_DATAJOINT_SUITE_CACHE:-/var/cache/djhpc-datajoint-suite}
VENV=${DJHPC_DATAJOINT_VENVS:-/opt/djhpc-datajoint}/suite-0.14
PY=$VENV/bin/python
PACKAGES=("datajoint==0.14.10" "pymysql>=1.1,<1.2" "pytest>=8" jinja2 pyyaml psutil rich)
# name=sha256 of each sdist; PyPI never changes a released file, so a mismatch is a corrupt or foreign file.
SDISTS=(
    "datajoint-0.14.10.tar.gz=28ca76dcf899eef836018ab2fe2fb597868e7eb6bf5771a1fa03393a3088b8a9"
    "datajoint-0.14.3.tar.gz=2e55538cacf9f263dc77d1d636d1d14fdeb5531adceeb5b8b9af56c4ec9a4f00"
)
say() { printf 'ensure-datajoint-suite: %s\n' "$*" >&2; }

ready() {  # the venv imports DataJoint 0.14.10, PyMySQL 1.1.x, pytest and djhpc's dependencies
    "$PY" - <<'PY' >/dev/null 2>&1
import sys, warnings
warnings.simplefilter("ignore")
import jinja2, yaml, psutil, rich, pymysql, numpy, pytest, minio, networkx, pandas, faker  # noqa: F401
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
    ready || { say "FAILED: $VENV does not import what the suite needs"; exit 1; }
fi
mkdir -p "$CACHE"
for entry in "${SDISTS[@]}"; do
    file=${entry%%=*}
    sha=${entry#*=}
    if ! echo "$sha  $CACHE/$file" | sha256sum -c --status 2>/dev/null; then
        version=${file#datajoint-}
        version=${version%.tar.gz}
        say "downloading $file from PyPI"
        rm -f "$CACHE/$file"
        tmp=$(mktemp -d)
        "$PY" -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
            -d "$tmp" "datajoint==$version" >&2
        mv "$tmp/$file" "$CACHE/$file"
        rm -rf "$tmp"
        echo "$sha  $CACHE/$file" | sha256sum -c --status ||
            { say "FAILED: $CACHE/$file does not have sha256 $sha"; rm -f "$CACHE/$file"; exit 1; }
    fi
    say "$file ok in $CACHE"
done
say "ready: $PY"
