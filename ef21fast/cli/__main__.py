"""``python -m ef21fast.cli``: the ``ef21fast`` command."""

import sys

from ef21fast.cli import main

sys.exit(main())
