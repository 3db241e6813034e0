"""The README's "Using it in pytest" examples are the example files of this folder, verbatim."""

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
README = HERE.parent.parent / "README.md"


@pytest.mark.parametrize(
    "example", ["test_sync_httpx.py", "test_async_httpx.py", "test_requests.py"]
)
def test_the_readme_shows_the_example_verbatim(example: str) -> None:
    readme = README.read_text("utf-8")
    assert "\n## Using it in pytest\n" in readme, "README.md has no 'Using it in pytest' section"
    section = readme.split("\n## Using it in pytest\n", 1)[1].split("\n## ", 1)[0]
    code = (HERE / example).read_text("utf-8")
    assert f"```python\n{code}```\n" in section, f"README.md does not show {example} verbatim"
