"""``python -m dpplan.cli``: the same as the ``dpplan`` command."""

import sys

from dpplan.cli import main

sys.exit(main())
