"""The README's first command: `djhpc demo` runs a real pipeline with several workers on SQLite."""

import os
import subprocess
import sys

from support.env import ROOT


def test_demo_populates_with_four_workers_and_records_the_deliberate_failure(tmp_path):
    out = subprocess.run([sys.executable, "-m", "djhpc.cli.main", "demo", "--dir", str(tmp_path / "demo")],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "41 of 42 sessions analysed, 1 left" in out.stdout
    assert "units: 164" in out.stdout
    assert "failed: subject='r1', session_id=7: ValueError: corrupt recording in session r1/7" in out.stdout
    assert "jobs table rows: 1" in out.stdout
    logs = sorted((tmp_path / "demo").glob("worker-*.keys.tsv"))
    assert len(logs) == 4
    assert sum(1 for f in logs if f.read_text().count("\tsuccess\t") > 0) >= 2, "work was not shared"


def test_demo_leaves_the_current_folder_empty_and_says_where_it_wrote(tmp_path):
    """Run from a source tree, the demo used to leave djhpc-demo/ there: now it writes to the cache folder."""
    cwd, cache = tmp_path / "cwd", tmp_path / "cache"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJHPC_", "DJ_"))}
    env.update(XDG_CACHE_HOME=str(cache), PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "djhpc.cli.main", "demo", "--workers", "2"], capture_output=True,
                         text=True, timeout=300, cwd=cwd, env=env)
    assert out.returncode == 0, out.stderr
    assert list(cwd.iterdir()) == []
    folder = cache / "djhpc" / "demo"
    assert f"are in {folder}" in out.stdout and f"next: cd {folder} && djhpc progress" in out.stdout
    assert "41 of 42 sessions analysed, 1 left" in out.stdout
    assert (folder / "demo.db").exists() and (folder / "pipeline.py").exists()
    # what the last line says to run is true there: progress names the failed key's count, not "done"
    progress = subprocess.run([sys.executable, "-m", "djhpc.cli.main", "progress", "-q"], capture_output=True,
                              text=True, timeout=120, cwd=folder, env=env)
    assert progress.returncode == 0, progress.stderr
    assert "41 of 42 done" in progress.stdout and "1 failed — see djhpc jobs errors" in progress.stdout
    errors = subprocess.run([sys.executable, "-m", "djhpc.cli.main", "jobs", "errors"], capture_output=True,
                            text=True, timeout=120, cwd=folder, env=env)
    assert "subject='r1', session_id=7" in errors.stdout, errors.stdout
    # a second run starts afresh
    again = subprocess.run([sys.executable, "-m", "djhpc.cli.main", "demo", "--workers", "2"], capture_output=True,
                           text=True, timeout=300, cwd=cwd, env=env)
    assert again.returncode == 0 and "41 of 42 sessions analysed, 1 left" in again.stdout, again.stderr
    assert list(cwd.iterdir()) == []


def test_readme_names_the_ci_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "TEST_CMD=(python -m pytest -x -q)" in ci
    assert "python -m pytest -x -q" in readme and "djhpc demo" in readme


def test_password_on_the_command_line_is_refused():
    out = subprocess.run([sys.executable, "-m", "djhpc.cli.main", "--database-url", "mysql://u:s3cret@h:3306",
                          "work", "x:Y"], capture_output=True, text=True)
    assert out.returncode == 2
    assert "s3cret" not in out.stderr and "password on the command line" in out.stderr
    assert out.stderr.count("\n") == 1
