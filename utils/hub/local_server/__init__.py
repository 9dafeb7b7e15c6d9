"""A small Hugging Face Hub-compatible HTTP server, in memory, on 127.0.0.1.

huggingface.co cannot be reached from CI, nor by a learner without a token or a network, and no
installable server implements uploads. This one answers the calls that ``huggingface_hub`` (2.x)
makes for a create-repo -> upload -> tag -> download -> info round trip (``routes.ROUTES``), so
the course's real upload and download code runs against it: the tests (``conftest.py`` starts
one for the session and points ``HF_ENDPOINT`` at it) and notebook 04 without a token
(``hub.share_model`` starts one for the round trip, passing ``endpoint=`` explicitly).

Not the Hub: files are always uploaded "regular" (base64 inside the commit, no LFS/Xet),
there is one branch (``main``), no pull requests, no pagination, and a Space never builds.
Tokens are checked the way the Hub does it: an unknown token is a 401 on every call, a
read token cannot write (403), anonymous callers can read public repos only. The tokens it
accepts (``TEST_TOKEN``, ``READ_ONLY_TOKEN``) are fake: never valid on the real Hub.

Opt-in, the Hub's rule since July 2026: with ``free_plan=True`` (or ``server.free_plan =
True``) creating a Gradio or Docker Space answers 402 with the Hub's own message, as it does
for a free account; static Spaces, and Gradio Spaces created on ZeroGPU hardware
(``zero-a10g``), are still created.

    with HubTestServer() as server:                 # a daemon thread, a free port
        HfApi(endpoint=server.url, token=TEST_TOKEN).create_repo("course-learner/x")

Run it by hand: ``python -m utils.hub.local_server`` (prints ``HF_ENDPOINT=...``).
Modules: ``store`` (repos, commits, card checks) < ``handler`` (HTTP plumbing, tokens)
< ``routes`` (the Hub's calls) < ``server`` (``HubTestServer``). Standard library only, plus
PyYAML (a dependency of huggingface_hub) for a card's front matter.
"""

from .server import HubTestServer, main
from .store import (
    READ_ONLY_TOKEN,
    TEST_TOKEN,
    TEST_USER,
    ZERO_GPU,
    Commit,
    Repo,
    front_matter,
    git_blob_oid,
)

__all__ = [
    "READ_ONLY_TOKEN",
    "TEST_TOKEN",
    "TEST_USER",
    "ZERO_GPU",
    "Commit",
    "HubTestServer",
    "Repo",
    "front_matter",
    "git_blob_oid",
    "main",
]
