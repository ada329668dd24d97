"""The real CLI in a subprocess at a given terminal width (COLUMNS), and checks that its lines fit."""

from __future__ import annotations

import subprocess
import sys


def djhpc_at(columns: int, argv, env: dict, cwd, timeout: float = 120) -> subprocess.CompletedProcess:
    """``djhpc ARGV`` with COLUMNS set, output piped (as a test or a pager sees it)."""
    env = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES")}
    env["COLUMNS"] = str(columns)
    return subprocess.run([sys.executable, "-m", "djhpc.cli.main", *map(str, argv)], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def fits(text: str, columns: int) -> bool:
    """No line of ``text`` is wider than ``columns``."""
    return all(len(line.rstrip()) <= columns for line in text.splitlines())


def uncut(text: str) -> bool:
    """Nothing was cut short with an ellipsis."""
    return "…" not in text
