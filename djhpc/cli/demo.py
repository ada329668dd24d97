"""``djhpc demo``: run a small pipeline with several workers on the embedded SQLite database."""

from __future__ import annotations

from pathlib import Path

from ..demo import default_folder, run_demo


def register(sub):
    p = sub.add_parser("demo", help="run a small pipeline with several local workers (no server needed)",
                       description="Write a demo pipeline to DIR, fill it, and populate it with several "
                                   "`djhpc work` processes on SQLite. Nothing is written to the current folder "
                                   "unless --dir names it.\n\nexample:\n  djhpc demo --workers 4")
    p.add_argument("--dir", help="folder to write the demo into (default: djhpc/demo in your cache folder, "
                                 "~/.cache; its old database is replaced)")
    p.add_argument("--workers", type=int, default=4, help="worker processes to start (default: 4)")
    p.set_defaults(func=run)


def run(args) -> int:
    folder = Path(args.dir) if args.dir else default_folder()
    return run_demo(folder, workers=max(1, args.workers))
