"""Golden files: every template rendered with a full profile. UPDATE_GOLDEN=1 rewrites them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support.scripts import FULL_ARGS, FULL_ENV, FULL_SETTINGS, FULL_TARGET, bash_syntax_ok

from djhpc.profile import Profile
from djhpc.schedulers import get_scheduler

GOLDEN = Path(__file__).parent / "golden"

CASES = {
    "slurm": ("slurm", {"array_size": 11}),
    "slurm-split": ("slurm", {"array_size": 1000, "index_offset": 1000, "total_tasks": 2500}),
    "pbs": ("pbs", {"array_size": 11}),
    "pbs-one-task": ("pbs", {"array_size": 1}),
    "torque": ("torque", {"array_size": 11}),
    "local": ("local", {"array_size": 11}),
    "parallel": ("parallel", {"array_size": 11}),
    "lsf": ("lsf", {"array_size": 11}),
    "lsf-split": ("lsf", {"array_size": 1000, "index_offset": 1000, "total_tasks": 2500}),
    "htcondor": ("htcondor", {"array_size": 11}),
    "sge": ("sge", {"array_size": 11}),
    "sge-split": ("sge", {"array_size": 1000, "index_offset": 1000, "total_tasks": 2500}),
}
# settings a case renders with instead of FULL_SETTINGS' (HTCondor's --after, held cluster and release job, has
# golden files of its own; Grid Engine refuses --gpus: each site names its own GPU resource)
SETTINGS = {"htcondor": {"after": []}, "sge": {"gpus": None}, "sge-split": {"gpus": None}}


def render_case(name: str) -> str:
    scheduler, kwargs = CASES[name]
    profile = Profile.from_dict({**FULL_SETTINGS, "scheduler": scheduler, **SETTINGS.get(name, {})})
    return get_scheduler(scheduler).render(profile, target=FULL_TARGET, worker_args=FULL_ARGS, env=FULL_ENV, **kwargs)


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str, tmp_path: Path) -> None:
    text = render_case(name)
    golden = GOLDEN / f"{name}.sh"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(text, encoding="utf-8")
    assert golden.exists(), f"no golden file {golden.name}: run with UPDATE_GOLDEN=1 and review the diff"
    assert text == golden.read_text(encoding="utf-8"), f"{golden.name} changed: UPDATE_GOLDEN=1 and review"
    bash_syntax_ok(text, tmp_path)


def test_golden_files_have_no_strays() -> None:
    assert {p.stem for p in GOLDEN.glob("*.sh")} == set(CASES)
