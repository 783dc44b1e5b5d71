"""``python -m l2session``: the command line."""

import sys

from l2session.cli.main import main

sys.exit(main())
