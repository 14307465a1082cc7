"""Operations fixtures: the API's model store of real tiny models and its clients."""
from tests.api.conftest import client, png_bytes, staff, staff_client, store  # noqa: F401
