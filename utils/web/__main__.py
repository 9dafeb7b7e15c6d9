"""``python -m utils.web``: see :mod:`utils.web.cli`."""

from .cli import main

if __name__ == "__main__":
    main()
