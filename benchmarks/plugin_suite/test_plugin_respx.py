"""100 create-poll-download cycles, in-process: the plugin's ``aio_emulator_respx``."""

import pytest
from suite_client import generate_image


@pytest.mark.parametrize("n", range(100))
def test_cycle(client, aio_emulator_respx, n):
    png = generate_image(
        client, "https://apiin.one", aio_emulator_respx.api_key, f"a red fox, take {n}"
    )
    assert png.startswith(b"\x89PNG")
