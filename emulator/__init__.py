"""A local emulator of the API in One gateway (https://apiin.one): images, videos, music,
speech, image tools and chat."""

from __future__ import annotations

__version__ = "0.2.0.dev0"  # the same as pyproject.toml (tests/test_version.py)

__all__ = ["Config", "Emulator", "__version__", "create_app"]


def __getattr__(name: str) -> object:  # lazy: importing the package stays cheap
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "Emulator":
        from .service import Emulator

        return Emulator
    if name == "Config":
        from .config import Config

        return Config
    raise AttributeError(name)
