"""100 create-poll-download cycles against the plugin's live server (``aio_emulator``)."""

import pytest
from suite_client import generate_image


@pytest.mark.parametrize("n", range(100))
def test_cycle(client, aio_emulator, n):
    png = generate_image(client, aio_emulator.url, aio_emulator.api_key, f"a red fox, take {n}")
    assert png.startswith(b"\x89PNG")
