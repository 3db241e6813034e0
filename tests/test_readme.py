"""The README's examples: the curl session, run verbatim against a live emulator (only the URL and
the wait differ: a free port, and a virtual clock advanced instead of sleeping), and the first
pytest test, run as a user's suite would run it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from emulator.app import create_app
from emulator.config import Config
from emulator.server import LiveServer

pytest_plugins = ["pytester"]

README = Path(__file__).parent.parent / "README.md"


def curl_session() -> str:
    text = README.read_text()
    section = text[text.index("## A session with curl") :]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_readme_curl_session_works_verbatim(tmp_path: Path) -> None:
    script = curl_session()
    assert "sleep 8" in script
    with LiveServer(create_app(Config(seed=3, clock="virtual"))) as live:
        advance = (
            f"curl -s -X POST {live.url}/_emulator/clock/advance "
            "-H 'Content-Type: application/json' -d '{\"seconds\": 8}' > /dev/null"
        )
        script = script.replace("http://127.0.0.1:8000", live.url).replace("sleep 8", advance)
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"n48[0-9a-f]{16}_cv4", lines[0])
    assert '"status":"IN_PROGRESS"' in lines[1]
    assert '"status":"completed"' in lines[2] and '"image_url":"http://' in lines[2]
    assert lines[3] == "PNG (1440, 720)"


def test_readme_stays_a_front_door() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines; move detail into docs/"


def test_readme_first_pytest_test_passes(pytester: pytest.Pytester) -> None:
    text = README.read_text()
    section = text[text.index("## Use it in your project") :]
    example = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider -p no:hypothesispytest\n")
    pytester.makepyfile(test_first=example)
    pytester.runpytest_subprocess().assert_outcomes(passed=1)
