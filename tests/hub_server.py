"""The local Hub of the tests, now ``utils.hub.local_server`` (in the package, so that notebook
04 can use it too, in Colab, without a token). Kept so that ``from tests.hub_server import ...``
keeps working; new code imports ``utils.hub.local_server``.

Run it by hand: ``python -m utils.hub.local_server``.
"""

from utils.hub.local_server import (  # noqa: F401  (re-exported for the tests)
    READ_ONLY_TOKEN,
    TEST_TOKEN,
    TEST_USER,
    HubTestServer,
)
