"""``python -m scorelab``: the same as the ``scorelab`` command."""

import sys

from scorelab.cli import main

sys.exit(main())
