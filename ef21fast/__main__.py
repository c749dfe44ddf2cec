"""``python -m ef21fast``: the ``ef21fast`` command."""

import sys

from ef21fast.cli import main

sys.exit(main())
