"""``python -m utils.space``: see :mod:`utils.space.cli`."""

from .cli import main

if __name__ == "__main__":
    main()
