"""Services run on the API's model store (real tiny models, a fresh registry)."""
from tests.api.conftest import png_bytes, staff, store  # noqa: F401  (fixtures shared with the API tests)
