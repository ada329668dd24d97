"""Job scripts run as a scheduler would run them, with a fake ``djhpc`` (and ``parallel``) first on PATH that
records each task's argv and environment; the directives at the top of a script read as sbatch/qsub read them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

FAKE_DJHPC = r"""#!/bin/bash
# stands in for djhpc: records argv (NUL-separated) and environment, one pair of files per task
out="${FAKE_DJHPC_OUT:?}/task-${DJHPC_TASK_ID:-none}"
printf '%s\0' "$@" > "$out.argv"
env -0 > "$out.env"
echo "$$" > "$out.pid"
if [ -n "${FAKE_DJHPC_SLEEP:-}" ]; then
    trap 'echo TERM > "$out.signal"; exit 143' TERM
    trap 'echo USR1 > "$out.signal"; exit 3' USR1
    touch "$out.started"
    sleep "$FAKE_DJHPC_SLEEP" &
    wait $!
fi
code_var="FAKE_DJHPC_EXIT_${DJHPC_TASK_ID:-none}"
exit "${!code_var:-0}"
"""

# GNU parallel as djhpc uses it: no command, so each input line (up to \n, as Perl reads it) runs
# through $PARALLEL_SHELL -c with PARALLEL_SEQ set; the exit status is the number of failures
FAKE_PARALLEL = r"""#!/bin/bash
if [ "$*" = "--version" ]; then
    echo "GNU parallel 20240222 (fake for tests)"
    exit 0
fi
printf '%s\0' "$@" > "${FAKE_DJHPC_OUT:?}/parallel.argv"
seq=0
failed=0
while IFS= read -r line; do
    seq=$((seq + 1))
    PARALLEL_SEQ=$seq "${PARALLEL_SHELL:-/bin/sh}" -c "$line" || failed=$((failed + 1))
done
exit "$failed"
"""


def write_executable(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o755)
    return path


def clean_env(**extra: str) -> dict[str, str]:
    """os.environ without DJHPC_*/DJ_*/SLURM_*/PBS_* (hygiene), plus extra."""
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("DJHPC_", "DJ_", "SLURM_", "PBS_", "PARALLEL", "FAKE_DJHPC"))
    }  # fmt: skip
    env.update(extra)
    return env


def run_script(
    script: str,
    fake_bin: Path,
    out: Path,
    *,
    args: tuple[str, ...] = (),
    cwd: Path | None = None,
    timeout: float = 30,
    **env: str,
) -> subprocess.CompletedProcess[bytes]:
    """Write the script into out/ and run it with bash, fake djhpc first on PATH."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "script.sh"
    path.write_text(script, encoding="utf-8")
    full_env = clean_env(PATH=f"{fake_bin}{os.pathsep}{os.environ['PATH']}", FAKE_DJHPC_OUT=str(out), **env)
    return subprocess.run(
        ["bash", str(path), *args], cwd=cwd or out, env=full_env, capture_output=True, timeout=timeout
    )


def read_argv(out: Path, task: str | int) -> list[str]:
    raw = (out / f"task-{task}.argv").read_bytes()
    assert raw.endswith(b"\0")
    return [part.decode("utf-8") for part in raw[:-1].split(b"\0")]


def read_env(out: Path, task: str | int) -> dict[str, str]:
    raw = (out / f"task-{task}.env").read_bytes()
    env = {}
    for item in raw.split(b"\0"):
        if item:
            name, _, value = item.decode("utf-8").partition("=")
            env[name] = value
    return env


def bash_syntax_ok(script: str, tmp: Path) -> None:
    path = tmp / "syntax-check.sh"
    path.write_text(script, encoding="utf-8")
    proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def directive_args(script: str, prefix: str) -> list[str]:
    """The arguments sbatch (or qsub) reads from the directive lines at the top of a script.

    A port of sbatch's _get_argument: blanks split, "..." and '...' group, backslash escapes
    (inside quotes too), an unquoted # ends the line; reading stops at the first command.
    """
    args: list[str] = []
    for line in script.split("\n")[1:]:  # sbatch splits on \n only, not on \f or \u2028
        if line.startswith(prefix):
            args.extend(_split_directive(line[len(prefix) :]))
        elif line.strip() and not line.lstrip().startswith("#"):
            break
    return args


def _split_directive(text: str) -> list[str]:
    spaces = " \t\n\v\f\r"
    args = []
    i = 0
    while True:
        while i < len(text) and text[i] in spaces:
            i += 1
        if i >= len(text):
            return args
        arg = []
        quoted, q_char, escape = False, "", False
        while i < len(text) and (quoted or text[i] not in spaces):
            ch = text[i]
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
                i += 1
                continue
            elif quoted:
                if ch == q_char:
                    quoted = False
                    i += 1
                    continue
            elif ch in "\"'":
                quoted, q_char = True, ch
                i += 1
                continue
            elif ch == "#":
                return args + ["".join(arg)] if arg else args
            arg.append(ch)
            i += 1
        args.append("".join(arg))


FULL_SETTINGS = {
    "scheduler": "slurm",
    "job_name": "dj analysis",
    "partition": "debug",
    "account": "lab-42",
    "qos": "normal",
    "time": "1d2h",
    "cpus": 4,
    "mem": "8G",
    "gpus": "a100:1",
    "nodes": 1,
    "output": "logs/djhpc-%A_%a.out",
    "error": "logs/djhpc-%A_%a.err",
    "mail_user": "me@example.org",
    "mail_type": "END,FAIL",
    "extra_directives": ["--constraint=haswell", "# a comment kept as it is"],
    "setup": ["module load python/3.11", 'echo "setup sees ${UNSET_IN_SETUP}"'],
    "workdir": "/scratch/me/my project",
    "throttle": 4,
    "after": "1234",
    "after_type": "afterany",
    "signal_seconds": 90,
    "requeue": False,
}
FULL_TARGET = "my_pipeline.Analysis"
FULL_ARGS = ["--max-calls", "10", "--restrict", '{"subject": 1}']
FULL_ENV = {"DJHPC_DATABASE_URL_FILE": "/home/me/.djhpc/db url"}
