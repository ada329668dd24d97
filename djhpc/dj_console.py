"""DataJoint's ``dj`` console (``dj.cli(args)``): set the connection's host, user and password, open schemas as
virtual modules, then an interactive Python console with ``dj`` (djhpc) and those modules in it.

    dj [-V] [-u USER] [-p PASSWORD] [-h HOST] [-s SCHEMA:MODULE ...]

DataJoint installs it as the ``dj`` program; with djhpc, ``python -m djhpc.dj_console`` (``dj.cli`` from Python).
``-h`` is the host, as in DataJoint: help is ``--help``. Not djhpc's own command line (``djhpc``, djhpc/cli).
"""

from __future__ import annotations

import argparse
import code
import sys


def parser() -> argparse.ArgumentParser:
    import djhpc as dj

    p = argparse.ArgumentParser(prog="dj", description="DataJoint console: an interactive Python console with "
                                "dj (djhpc) and the schemas given as modules.", conflict_handler="resolve")
    p.add_argument("-V", "--version", action="version", version=f"{dj.__name__} {dj.__version__}")
    p.add_argument("-u", "--user", help="database user (dj.config['database.user'])")
    p.add_argument("-p", "--password", help="database password (seen by other users of this machine in its "
                   "process list: prefer DJ_PASS or dj_local_conf.json)")
    p.add_argument("-h", "--host", help="database host, as host or host:port (dj.config['database.host'])")
    p.add_argument("-s", "--schemas", nargs="+", metavar="SCHEMA:MODULE", default=[],
                   help="open schema SCHEMA as a virtual module named MODULE in the console")
    return p


def virtual_modules(mappings: list[str], error) -> dict:
    """MODULE name -> the virtual module of SCHEMA, for each ``SCHEMA:MODULE`` of ``-s``."""
    import djhpc as dj

    mods = {}
    for text in mappings:
        schema_name, sep, module = text.partition(":")
        if not (sep and schema_name and module.isidentifier()):
            error(f"-s takes SCHEMA:MODULE, e.g. -s lab_session:session (got {text!r})")
        mods[module] = dj.create_virtual_module(module, schema_name)
    return mods


def cli(args: list[str] | None = None):
    """Run the console with ``args`` (``sys.argv[1:]`` when None); exits (SystemExit) when the console ends."""
    import djhpc as dj

    p = parser()
    options = p.parse_args(args)
    for key, value in (("user", options.user), ("password", options.password), ("host", options.host)):
        if value:
            dj.config[f"database.{key}"] = value
    try:
        mods = virtual_modules(options.schemas, p.error)
    except dj.DjhpcError as exc:
        print(f"dj: error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    banner = "dj repl (djhpc)\n"
    if mods:
        banner += "\nschema modules:\n\n" + "\n".join(f"  - {m}" for m in mods) + "\n"
    code.interact(banner, local={"dj": dj, "__name__": "__console__", **mods}, exitmsg="")
    raise SystemExit


if __name__ == "__main__":
    cli()
