# apt-install.sh - sourced by the tests/cluster scripts: install Debian packages without starting services.
#
#   apt_install LOG PACKAGE...
#
# Installs with the current package lists first and runs `apt-get update` only when that fails. A temporary
# /usr/sbin/policy-rc.d keeps the packages' maintainer scripts from starting services (the caller starts
# what it needs); it is removed afterwards, also when the install fails. Output goes to LOG; on failure its
# last lines are shown. The caller defines say() and fail().

apt_install() {
    local log=$1
    shift
    local own_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    local opts=(-y -q --no-install-recommends -o DPkg::Lock::Timeout=300
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install "${opts[@]}" "$@" >"$log" 2>&1; then
        say "refreshing package lists (apt-get update)"
        apt-get update -q -o DPkg::Lock::Timeout=300 >>"$log" 2>&1 || { tail -20 "$log" >&2; fail "apt-get update"; }
        apt-get install "${opts[@]}" "$@" >>"$log" 2>&1 || { tail -20 "$log" >&2; fail "apt-get install $*"; }
    fi
    if ((own_policy)); then
        rm -f /usr/sbin/policy-rc.d
        trap - EXIT
    fi
}
