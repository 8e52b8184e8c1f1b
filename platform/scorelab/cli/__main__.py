"""``python -m scorelab.cli``: the same as the ``scorelab`` command."""

import sys

from scorelab.cli import main

sys.exit(main())
