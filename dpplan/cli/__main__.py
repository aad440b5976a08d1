"""``python -m dpplan.cli``."""

import sys

from dpplan.cli import main

sys.exit(main())
