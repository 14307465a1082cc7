"""Web page fixtures: the API's model store of real tiny models."""
from tests.api.conftest import client, png_bytes, staff, store  # noqa: F401
