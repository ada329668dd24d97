"""Following an example's README walkthrough as a user would: its first step run as written (copy the example
out of the source tree, cd there, set up), from a copy of the tracked files only, with HOME in a temp folder.

Stale local files in examples/ (an old run's database or logs) therefore cannot reach the test, and
``source_status`` tells whether the walkthrough wrote anything into the source tree.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from .env import ROOT


def tracked_files(folder: str) -> list[str]:
    """The files git tracks under ``folder`` (relative to the repository), e.g. ``examples/slurm``."""
    out = subprocess.run(["git", "ls-files", "-z", "--", folder], cwd=ROOT, capture_output=True, timeout=60)
    if out.returncode != 0:  # not a git checkout (an unpacked sdist): every file there counts as tracked
        return sorted(str(p.relative_to(ROOT)) for p in (ROOT / folder).rglob("*") if p.is_file())
    return sorted(name for name in out.stdout.decode().split("\0") if name)


def tracked_copy(folder: str, checkout: Path) -> Path:
    """A checkout of ``folder``'s tracked files under ``checkout`` (same relative paths); returns ``checkout``."""
    for name in tracked_files(folder):
        target = checkout / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    return checkout


def source_status(folder: str = "examples") -> str:
    """``git status --porcelain --ignored FOLDER``: what is in the source tree that git does not track as is."""
    out = subprocess.run(["git", "status", "--porcelain", "--ignored", "--", folder], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    return out.stdout if out.returncode == 0 else ""


def setup_block(example: str) -> str:
    """The ```bash block of examples/EXAMPLE/README.md that copies the example out of the source tree: the
    walkthrough's first step, as written."""
    text = (ROOT / "examples" / example / "README.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```bash\n(.*?)```", text, re.S) if f"cp -r examples/{example} " in b]
    assert blocks, f"examples/{example}/README.md no longer starts by copying the example out of the source tree"
    return blocks[0]


def follow_setup(example: str, tmp_path: Path, env: dict) -> tuple[Path, subprocess.CompletedProcess]:
    """Run the copying step of examples/EXAMPLE/README.md as written, in a tracked-only checkout with HOME under
    ``tmp_path``; returns (the folder the step ended in, its completed process). ``env`` gets HOME and a PATH
    whose ``python`` is this interpreter."""
    checkout = tracked_copy(f"examples/{example}", tmp_path / "checkout")
    home = tmp_path / "home"
    home.mkdir()
    env.update(HOME=str(home), PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', os.defpath)}")
    block = setup_block(example)
    script = f"set -euo pipefail\n{block}\npwd > {tmp_path / 'walkthrough-dir'}\n"
    done = subprocess.run(["bash", "-c", script], cwd=checkout, env=env, capture_output=True, text=True, timeout=300)
    folder = Path((tmp_path / "walkthrough-dir").read_text().strip()) if done.returncode == 0 else home
    return folder, done
