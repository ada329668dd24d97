"""``python -m tests.datajoint_elements``: see run.py."""

import sys

from .run import main

sys.exit(main())
