"""``python -m tests.datajoint_suite``: see run.py."""

import sys

from .run import main

sys.exit(main())
