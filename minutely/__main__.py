"""``python -m minutely``: the command line."""

import sys

from minutely.cli import main

sys.exit(main())
