"""A throw-away MariaDB server on its own port and data directory, for tests that restart, crash or limit it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pymysql

from .env import unavailable, wait_for


def answers(port: int) -> bool:
    try:
        pymysql.connect(host="127.0.0.1", port=port, user="root", connect_timeout=1).close()
        return True
    except pymysql.err.Error:
        return False


def free_port() -> int:
    """A port nothing listens on now (another test run's private server may hold a fixed one)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateMariaDB:
    """A MariaDB server of the test's own, which it may restart, kill or start with other settings
    (``options``: extra server flags, e.g. ``--max-connections=20``)."""

    def __init__(self, base: Path, port: int | None = None, options: tuple[str, ...] = ()):
        self.base, self.port = base, port or free_port()
        self.datadir = base / "data"
        self.options = tuple(options)
        self.proc = None

    @property
    def url(self) -> str:
        return f"mysql://root@127.0.0.1:{self.port}"

    def install(self):
        if os.geteuid() != 0:
            unavailable("a private MariaDB needs root here")
        binary = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
        if not binary or not Path("/usr/sbin/mariadbd").exists():
            unavailable("mariadbd is not installed (tests/cluster/ensure-mariadb.sh installs it)")
        self.base.mkdir(parents=True, exist_ok=True)
        subprocess.run([binary, "--no-defaults", f"--datadir={self.datadir}", "--user=root",
                        "--auth-root-authentication-method=normal", "--skip-test-db"],
                       check=True, capture_output=True, timeout=120)

    def start(self):
        self.proc = subprocess.Popen(
            ["/usr/sbin/mariadbd", "--no-defaults", f"--datadir={self.datadir}", f"--port={self.port}",
             "--bind-address=127.0.0.1", f"--socket={self.base}/sock", "--user=root", "--skip-name-resolve",
             f"--pid-file={self.base}/pid", "--innodb-buffer-pool-size=64M", f"--log-error={self.base}/err.log",
             *self.options],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: answers(self.port), timeout=60, what="the private MariaDB")

    def stop(self, kill: bool = False):
        """Shut the server down (SIGTERM), or with ``kill`` crash it (SIGKILL: no shutdown, replies lost)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill() if kill else self.proc.terminate()
            self.proc.wait(timeout=60)
