#!/usr/bin/env bash
# ensure-tools.sh - make sure the external tools the test suite drives exist:
#
#   * GNU parallel (Debian package `parallel`; moreutils' unrelated `parallel`
#     does not count).  Its citation notice is silenced for good by creating
#     ~/.parallel/will-cite for the invoking user (and root), so it can never
#     wait for input in a non-interactive run.
#   * libfaketime (Debian package `faketime`): one worker's clock skewed for the
#     clock-skew fault test (LD_PRELOAD, FAKETIME="+600s").
#   * zsh: `djhpc completion zsh` is loaded into a real zsh by the completion test.
#   * Chromium (Debian package `chromium`), verified by rendering a local
#     file:// page to a PNG in headless mode with the flags the tests use.
#
# Packages are installed with apt-get only when missing (root needed then).
# Environment (optional):
#   ENSURE_TOOLS_CHROMIUM=1   0 = skip Chromium entirely (install and check)
#   ENSURE_TOOLS_VERIFY=1     0 = do not take the verification screenshot
set -euo pipefail

WANT_CHROMIUM=${ENSURE_TOOLS_CHROMIUM:-1}
VERIFY=${ENSURE_TOOLS_VERIFY:-1}

START_NS=$(date +%s%N)
say() {
    local ms=$(( ($(date +%s%N) - START_NS) / 1000000 ))
    printf 'ensure-tools [%d.%03ds] %s\n' $((ms / 1000)) $((ms % 1000)) "$*" >&2
}
fail() { say "FAILED: $*"; exit 1; }
# shellcheck source=apt-install.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/apt-install.sh"

have_gnu_parallel() { parallel --version 2>/dev/null </dev/null | head -n1 | grep -q '^GNU parallel'; }
have_chromium() { command -v chromium >/dev/null; }
have_faketime() { compgen -G '/usr/lib/*/faketime/libfaketime.so.1' >/dev/null; }

missing=()
have_gnu_parallel || missing+=(parallel)
have_faketime || missing+=(faketime)
command -v zsh >/dev/null || missing+=(zsh)
[[ $WANT_CHROMIUM == 1 ]] && ! have_chromium && missing+=(chromium)

if ((${#missing[@]})); then
    [[ $(id -u) == 0 ]] || fail "need root to apt-get install ${missing[*]}"
    say "apt-get install ${missing[*]}"
    apt_install /tmp/ensure-tools-apt.log "${missing[@]}"
    say "installed ${missing[*]}"
fi

# ---------------------------------------------------------- GNU parallel ---
pver=$(parallel --version 2>/dev/null </dev/null | head -n1 || true)
[[ $pver == "GNU parallel "* ]] || fail "'parallel' is not GNU parallel: $(command -v parallel || echo missing)"
# The will-cite file is per user ($HOME/.parallel); cover the caller and root.
for home in "${HOME:-}" "$(getent passwd "$(id -un)" | cut -d: -f6)" /root; do
    [[ -n $home && -d $home && -w $home ]] || continue
    mkdir -p "$home/.parallel" && touch "$home/.parallel/will-cite"
done
# Prove it cannot block: no terminal on stdin, hard time limit.
out=$(timeout 30 parallel echo ::: ok </dev/null 2>&1) || fail "GNU parallel did not run: $out"
[[ $out == ok ]] || fail "GNU parallel printed something unexpected: $out"
say "$pver ok"

# -------------------------------------------------------------- chromium ---
if [[ $WANT_CHROMIUM == 1 ]]; then
    have_chromium || fail "chromium not found after install"
    if [[ $VERIFY == 1 ]]; then
        tmp=$(mktemp -d /tmp/ensure-tools.XXXXXX)
        trap 'rm -rf "$tmp"' EXIT
        cat >"$tmp/page.html" <<'HTML'
<!doctype html>
<html><head><meta charset="utf-8"><title>ensure-tools</title></head>
<body style="background:#2060c0;color:#fff;font:32px sans-serif">
<h1>djhpc headless check</h1></body></html>
HTML
        if ! timeout 90 chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
            --disable-component-update --disable-sync --no-first-run --user-data-dir="$tmp/profile" \
            --window-size=640,360 --screenshot="$tmp/shot.png" "file://$tmp/page.html" \
            </dev/null >"$tmp/chromium.log" 2>&1; then
            tail -20 "$tmp/chromium.log" >&2
            fail "chromium --headless --screenshot failed"
        fi
        [[ -s $tmp/shot.png && $(head -c 8 "$tmp/shot.png" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]] ||
            { tail -20 "$tmp/chromium.log" >&2; fail "chromium wrote no PNG screenshot"; }
        say "$(chromium --version 2>/dev/null </dev/null) ok: screenshot of a file:// page is $(stat -c %s "$tmp/shot.png") bytes"
    else
        say "$(chromium --version 2>/dev/null </dev/null) present (screenshot check skipped)"
    fi
fi
