"""``python -m tests.datajoint_suite``: see run.py."""

import sys

from tests.datajoint_suite.run import main

sys.exit(main())
