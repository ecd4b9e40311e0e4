"""``python -m vtune``: the ``vtune`` command line (see :mod:`vtune.cli`)."""

import sys

from vtune.cli import main

if __name__ == "__main__":
    sys.exit(main())
