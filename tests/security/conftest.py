from tests.api.conftest import client, png_bytes, staff, staff_client, store  # noqa: F401  (shared fixtures)
