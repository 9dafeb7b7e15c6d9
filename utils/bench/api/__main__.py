"""``python -m utils.bench.api`` (as ``python -m utils.bench api``): see :mod:`.cli`."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
