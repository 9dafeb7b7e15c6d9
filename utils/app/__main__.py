"""``python -m utils.app``: serve the counter (see ``utils.app.launch``)."""

from .launch import main

if __name__ == "__main__":
    raise SystemExit(main())
