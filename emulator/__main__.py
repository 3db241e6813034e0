"""``python -m emulator`` is the ``aio-emulator`` command."""

import sys

from .cli import main

sys.exit(main())
