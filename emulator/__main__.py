"""``python -m emulator`` is the ``aio-emulator`` command."""

import sys

from .cli import main

if __name__ == "__main__":  # not when a render process (spawn) imports it as __mp_main__
    sys.exit(main())
