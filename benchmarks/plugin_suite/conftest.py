"""One httpx client for the whole suite, as an application would hold one."""

import httpx
import pytest


@pytest.fixture(scope="session")
def client():
    with httpx.Client(timeout=30) as client:
        yield client
