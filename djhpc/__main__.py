"""``python -m djhpc``: the command line, for an environment where the ``djhpc`` script is not on PATH."""

import sys

from djhpc.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
