#!/usr/bin/env bash
# ensure-mariadb.sh - make sure a MariaDB server answers on 127.0.0.1:3306 for
# user root with an empty password (the test suite's database).
#
#   1. If `mariadb -h127.0.0.1 -uroot` already works: only make sure
#      max_connections is at least $MARIADB_MAX_CONNECTIONS (fast, < 0.1 s).
#   2. Else, if /usr/sbin/mariadbd is installed: start it with
#      start-stop-daemon (no systemd needed) and wait for it.
#   3. Else: apt-get install mariadb-server (services kept from auto-starting
#      by a temporary policy-rc.d), then start it as in 2.
#   In cases 2 and 3, if root still cannot log in over TCP with an empty
#   password (Debian's root@localhost uses unix_socket auth), fix that through
#   the local socket: root@localhost accepts an empty password or unix_socket,
#   and root@127.0.0.1 is created for servers running with skip-name-resolve.
#
# Never stops or restarts a running server.  Needs root for cases 2 and 3.
# Environment (optional):
#   MARIADB_MAX_CONNECTIONS=500   lower bound for max_connections (never lowered)
#   MARIADB_START_TIMEOUT=60      seconds to wait for the server to answer
set -euo pipefail

MAX_CONN=${MARIADB_MAX_CONNECTIONS:-500}
WAIT=${MARIADB_START_TIMEOUT:-60}
[[ $MAX_CONN =~ ^[0-9]+$ && $WAIT =~ ^[0-9]+$ ]] || { echo "ensure-mariadb: bad numeric setting" >&2; exit 2; }

START_NS=$(date +%s%N)
say() {
    local ms=$(( ($(date +%s%N) - START_NS) / 1000000 ))
    printf 'ensure-mariadb [%d.%03ds] %s\n' $((ms / 1000)) $((ms % 1000)) "$*" >&2
}
fail() { say "FAILED: $*"; exit 1; }
# shellcheck source=apt-install.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/apt-install.sh"

client() {
    if command -v mariadb >/dev/null; then mariadb "$@"; else mysql "$@"; fi
}
tcp_root() { client --connect-timeout=5 -h127.0.0.1 -P3306 -uroot --password= "$@"; }
raise_max_connections() {
    tcp_root -e "SET GLOBAL max_connections = GREATEST(@@GLOBAL.max_connections, $MAX_CONN)" ||
        fail "could not raise max_connections"
}

# ---- 1. already up: nothing to do but max_connections ----------------------
if { command -v mariadb || command -v mysql; } >/dev/null && tcp_root -e 'SELECT 1' >/dev/null 2>&1; then
    raise_max_connections
    say "MariaDB answers on 127.0.0.1:3306 (max_connections $(tcp_root -N -e 'SELECT @@max_connections'))"
    exit 0
fi

[[ $(id -u) == 0 ]] || fail "no MariaDB on 127.0.0.1:3306 and not root, so cannot install/start one"

# ---- 3. not installed: install --------------------------------------------
if [[ ! -x /usr/sbin/mariadbd ]] || ! command -v mariadb >/dev/null; then
    say "installing mariadb-server with apt-get"
    apt_install /tmp/ensure-mariadb-apt.log mariadb-server mariadb-client
    say "mariadb-server installed"
fi

# ---- 2. installed but not answering: start it ------------------------------
getent passwd mysql >/dev/null || fail "user 'mysql' does not exist"
install -d -o mysql -g mysql -m 755 /run/mysqld
datadir=$(/usr/sbin/mariadbd --print-defaults 2>/dev/null | tr ' ' '\n' | sed -n 's/^--datadir=//p' | tail -n1)
datadir=${datadir:-/var/lib/mysql}
if [[ ! -d $datadir/mysql ]]; then
    say "initialising data directory $datadir"
    install -d -o mysql -g mysql -m 755 "$datadir"
    mariadb-install-db --user=mysql --datadir="$datadir" >/tmp/ensure-mariadb-install-db.log 2>&1 ||
        fail "mariadb-install-db (see /tmp/ensure-mariadb-install-db.log)"
fi
# --user=mysql: the stock Debian config leaves `user` commented out, and
# mariadbd refuses to run as root.
# --pidfile scopes the "already running?" check to this server: without it any
# mariadbd (e.g. start-slurm.sh's private one on 3307) would count as running.
pidfile=$(/usr/sbin/mariadbd --print-defaults 2>/dev/null | tr ' ' '\n' | sed -n 's/^--pid-file=//p' | tail -n1)
pidfile=${pidfile:-/run/mysqld/mysqld.pid}
say "starting /usr/sbin/mariadbd"
start-stop-daemon --start --oknodo --background --pidfile "$pidfile" --exec /usr/sbin/mariadbd -- --user=mysql \
    </dev/null >/dev/null 2>&1 || fail "start-stop-daemon could not start mariadbd"

# Wait until the server answers, over TCP or (for unix_socket root) the socket.
deadline=$((SECONDS + WAIT))
until tcp_root -e 'SELECT 1' >/dev/null 2>&1 || client --connect-timeout=5 -uroot -e 'SELECT 1' >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "MariaDB did not answer within ${WAIT}s (see /var/log/mysql/error.log)"
    sleep 0.2
done

# ---- root over TCP with an empty password ----------------------------------
if ! tcp_root -e 'SELECT 1' >/dev/null 2>&1; then
    say "allowing root@localhost and root@127.0.0.1 to log in with an empty password"
    client -uroot -e "
        ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket;
        CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
        GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
        FLUSH PRIVILEGES;" || fail "could not change root's authentication"
    tcp_root -e 'SELECT 1' >/dev/null 2>&1 || fail "root still cannot log in over TCP (is the server on port 3306?)"
fi
raise_max_connections
say "MariaDB answers on 127.0.0.1:3306 (max_connections $(tcp_root -N -e 'SELECT @@max_connections'))"
