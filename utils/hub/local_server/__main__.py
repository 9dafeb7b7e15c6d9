"""``python -m utils.hub.local_server``: serve the local Hub until Ctrl-C; prints HF_ENDPOINT=..."""

from .server import main

main()
