"""``python -m utils``: train, evaluate and count from the command line (see ``utils.cli``)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
