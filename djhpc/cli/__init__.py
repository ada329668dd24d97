"""djhpc's command line (``djhpc``: main.py and a module per command).

The package is also callable: ``import djhpc as dj`` makes ``dj.cli`` this package, and DataJoint's ``dj.cli(args)``
runs DataJoint's console, so calling it runs djhpc's (djhpc/dj_console.py); ``cli`` here is that function too.
"""

import sys
import types

from ..dj_console import cli


class _CallablePackage(types.ModuleType):
    def __call__(self, args=None):
        return cli(args)


sys.modules[__name__].__class__ = _CallablePackage
