"""`python -m vla.cli ...`: the same as the `vla` console script."""

import sys

from vla.cli.main import main

sys.exit(main())
