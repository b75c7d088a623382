"""``python -m o1pruner ...``: the same command line as the ``o1pruner``
entry point (see ``python -m o1pruner --help``)."""

import sys

from .apps.cli import main

if __name__ == "__main__":
    sys.exit(main())
