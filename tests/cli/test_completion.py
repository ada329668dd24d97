"""``djhpc completion bash|zsh`` from the real command: bash sources the script, registers it for djhpc, and its
function completes commands, subcommands, options (global ones after the command too), choices and files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from support.env import unavailable

from djhpc.cli.main import build_parser

DJHPC = Path(sys.executable).with_name("djhpc")

# each line: the words typed (the last one being completed), then what completion must offer
BASH_CASES = [
    (["pro"], {"progress"}),
    (["sub"], {"submit"}),
    (["jobs", "re"], {"retry"}),
    (["history", ""], {"prune", "show"}),
    (["work", "--ord"], {"--order"}),
    (["work", "--order", ""], {"original", "reverse", "random"}),
    (["submit", "--scheduler", "s"], {"slurm", "sge"}),
    (["render", "--after-type", "after"], {"after", "afterok", "afterany", "afternotok"}),
    (["progress", "pipeline.py:Square", "--data"], {"--database-url"}),  # a global option after the command
    (["jobs", "list", "--no"], {"--no-color"}),
    (["completion", ""], {"bash", "zsh"}),
    (["--database-url", "sqlite:///x.db", "jo"], {"jobs"}),  # an option's value is not taken for a command
    (["-q", "hist"], {"history"}),
    (["work", "pip"], {"pipeline.py"}),  # TARGET: a file name
    (["work", "--log", "pip"], {"pipeline.py"}),
]


def _script(shell: str, cwd: Path) -> Path:
    out = subprocess.run([str(DJHPC), "completion", shell], capture_output=True, text=True, cwd=cwd, timeout=60)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    path = cwd / f"djhpc.{shell}"
    path.write_text(out.stdout)
    return path


def _complete_in_bash(script: Path, cases, cwd: Path) -> list[str]:
    """One bash: source the script, print `complete -p djhpc`, then each case's COMPREPLY on a line."""
    lines = [f"source {script}", "complete -p djhpc"]
    for words, _ in cases:
        quoted = " ".join("'" + w + "'" for w in ["djhpc", *words])
        lines.append(f"COMP_WORDS=({quoted}); COMP_CWORD={len(words)}; COMPREPLY=(); _djhpc; "
                     'echo "${COMPREPLY[*]}"')
    out = subprocess.run(["bash", "--norc", "--noprofile", "-c", "\n".join(lines)], capture_output=True, text=True,
                         cwd=cwd, timeout=60, env={"PATH": os.environ["PATH"], "HOME": str(cwd)})
    assert out.returncode == 0 and out.stderr == "", out.stderr
    return out.stdout.splitlines()


def test_bash_sources_the_script_and_completes(tmp_path):
    (tmp_path / "pipeline.py").write_text("")
    script = _script("bash", tmp_path)
    subprocess.run(["bash", "-n", str(script)], check=True)
    registered, *answers = _complete_in_bash(script, BASH_CASES, tmp_path)
    assert registered == "complete -o filenames -F _djhpc djhpc"
    assert len(answers) == len(BASH_CASES)
    for (words, expected), answer in zip(BASH_CASES, answers, strict=True):
        assert set(answer.split()) == expected, (words, answer)


def test_every_command_and_subcommand_completes(tmp_path):
    """Generated from the parser: nothing the command accepts is missing from the script."""
    script = _script("bash", tmp_path)
    parser = build_parser()
    top = set(parser._subparsers._group_actions[0]._name_parser_map)
    assert {"init", "completion", "work", "submit", "render", "parallel", "jobs"} <= top
    cases = [([name[:-1]], name) for name in sorted(top)]
    jobs = parser._subparsers._group_actions[0]._name_parser_map["jobs"]
    cases += [(["jobs", name], name) for name in jobs._subparsers._group_actions[0]._name_parser_map]
    answers = _complete_in_bash(script, cases, tmp_path)[1:]
    for (words, name), answer in zip(cases, answers, strict=True):
        assert name in answer.split(), (words, answer)


def test_values_without_choices_complete_nothing(tmp_path):
    (tmp_path / "pipeline.py").write_text("")
    script = _script("bash", tmp_path)
    cases = [(["history", "prune", "--older-than", ""], set()), (["submit", "--array", ""], set())]
    assert _complete_in_bash(script, cases, tmp_path)[1:] == ["", ""]


def test_zsh_registers_the_same_function(tmp_path):
    if not shutil.which("zsh"):
        unavailable("zsh is not installed (apt-get install zsh)")
    script = _script("zsh", tmp_path)
    assert script.read_text().endswith(_script("bash", tmp_path).read_text())  # the bash function, the same
    body = ("source ./djhpc.zsh; print -r -- ${_comps[djhpc]}; "
            "t() { emulate -L sh; setopt kshglob noshglob braceexpand; COMP_WORDS=(djhpc \"$@\"); "
            "COMP_CWORD=$#; COMPREPLY=(); _djhpc; print -r -- \"${COMPREPLY[*]}\"; }; "
            "t work --order ''; t history ''")
    out = subprocess.run(["zsh", "-f", "-c", body], capture_output=True, text=True, cwd=tmp_path, timeout=60,
                         env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    registered, order, history = out.stdout.splitlines()
    assert registered == "_bash_complete -o filenames -F _djhpc"
    assert set(order.split()) == {"original", "reverse", "random"} and set(history.split()) == {"prune", "show"}
