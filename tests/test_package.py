"""The package as users get it: built from a copy of the checkout, installed from its wheel into a
new virtual environment, and run from there (not from the checkout), so missing package data
cannot slip through.

The README's install lines are run verbatim, each with a new environment first on PATH (the
dependencies come from the package index, or pip's cache): ``python3 -m pip wheel --no-deps -w
dist .`` in the copy, then ``pip install "$(ls dist/*.whl)[pytest]"``; and, into another
environment, the editable install of a checkout, ``pip install -e '.[pytest]'``.

Marked ``package`` (about 40 s): ``pytest -m "not package"`` leaves it out.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import textwrap
import urllib.request
import venv
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.package

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
READY_SCENARIOS = sorted(p.stem for p in (ROOT / "emulator/data/scenarios").glob("*.yaml"))
DASHBOARD_ASSETS = {
    "dashboard.css": "text/css",
    "dashboard.js": "text/javascript",
    "favicon.svg": "image/svg+xml",
}


@dataclass(frozen=True)
class Installed:
    source: Path  # the copy of the checkout the package was built from
    bin: Path  # the new virtual environment's bin folder
    env: dict[str, str]  # environment for commands run "as a user" of that environment
    home: Path  # an empty folder to run them in, away from the checkout


def tracked_files() -> list[str]:
    """The files a fresh clone has: tracked, plus new ones git does not ignore."""
    done = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    return [name for name in done.stdout.decode().split("\0") if name]


def readme_install_lines() -> list[str]:
    """The README's install block: the editable line, then the two that build a wheel and
    install it."""
    text = README.read_text("utf-8")
    section = text[text.index("## Use it in your project") :]
    lines = re.search(r"```sh\n(.*?)```", section, re.S).group(1).splitlines()
    assert len(lines) == 3 and lines[0].startswith("pip install -e "), lines
    return lines


def run(args: list[str] | str, installed: Installed, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(
        args,
        env=installed.env,
        capture_output=True,
        text=True,
        timeout=kwargs.pop("timeout", 120),
        **kwargs,
    )
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done


def new_environment(path: Path) -> tuple[Path, dict[str, str]]:
    """A virtual environment without the system's packages, and an environment for commands
    with it first on PATH."""
    venv.create(path, with_pip=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PATH"] = f"{path / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return path / "bin", env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("package")
    source = base / "source"
    for name in tracked_files():
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / name).is_symlink():
            target.symlink_to(os.readlink(ROOT / name))
        elif (ROOT / name).is_file():
            shutil.copy2(ROOT / name, target)
    home = base / "home"
    home.mkdir()
    found = Installed(source, *new_environment(base / "venv"), home)
    # the sdist too: `python -m build`, from the development environment
    run([sys.executable, "-m", "build", "--sdist", "--outdir", "sdist", "."], found, cwd=source)
    wheel_lines = "\n".join(readme_install_lines()[1:])
    run(["bash", "-euo", "pipefail", "-c", wheel_lines], found, cwd=source, timeout=300)
    return found


def test_the_distributions_hold_every_file_of_the_package(installed: Installed) -> None:
    package_files = [n for n in tracked_files() if n.startswith("emulator/")]
    (wheel,) = (installed.source / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        in_wheel = set(archive.namelist())
    (sdist,) = (installed.source / "sdist").glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        in_sdist = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert [n for n in package_files if n not in in_wheel] == []
    assert [n for n in package_files if n not in in_sdist] == []
    assert {"LICENSE", "README.md", "pyproject.toml"} <= in_sdist
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in in_wheel)


def test_the_base_install_is_the_server_and_pytest_adds_the_fixtures(installed: Installed) -> None:
    (wheel,) = (installed.source / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = archive.read(name).decode()
    requires = re.findall(
        r"^Requires-Dist: ([A-Za-z0-9_.-]+)(\[\w+\])?[^;\n]*(?:; (.*))?$", metadata, re.M
    )
    base = sorted(f"{dist}{extra}" for dist, extra, marker in requires if not marker)
    assert base == sorted(
        [
            "av",
            "google-re2",
            "orjson",
            "pillow",
            "pyyaml",
            "starlette",
            "uvicorn[standard]",
            "zlib-ng",
        ]
    )
    fixtures = sorted(dist for dist, _, marker in requires if marker == 'extra == "pytest"')
    assert fixtures == ["httpx", "pytest", "respx"]


def test_the_command_lists_every_ready_scenario(installed: Installed) -> None:
    done = run([str(installed.bin / "aio-emulator"), "scenarios"], installed, cwd=installed.home)
    assert [line.split()[0] for line in done.stdout.splitlines()] == READY_SCENARIOS
    schema = run([str(installed.bin / "aio-emulator"), "schema"], installed, cwd=installed.home)
    assert json.loads(schema.stdout)["$schema"].startswith("https://json-schema.org/")


def get(url: str, body: dict | None = None) -> tuple[int, dict[str, str], bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    request.add_header("Authorization", "Bearer aio_package")
    if data:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, dict(response.headers), response.read()


def test_serve_answers_and_serves_the_dashboard(installed: Installed) -> None:
    args = ["serve", "--port", "0", "--seed", "1", "--clock", "virtual"]
    server = subprocess.Popen(
        [str(installed.bin / "aio-emulator"), *args],
        cwd=installed.home,
        env=installed.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline()  # the start-up line, printed once it listens
        found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        assert found, (line, server.stderr.read() if server.poll() is not None else "")
        url = found.group(1)
        status, _, body = get(f"{url}/_emulator/health")
        assert status == 200 and json.loads(body)["status"] == "ok"
        status, headers, page = get(f"{url}/_emulator/")
        assert status == 200 and headers["content-type"].startswith("text/html")
        for name, media in DASHBOARD_ASSETS.items():
            assert f"/_emulator/ui/{name}".encode() in page
            status, headers, asset = get(f"{url}/_emulator/ui/{name}")
            assert status == 200 and headers["content-type"].startswith(media) and asset
        # the catalogue and the renderer: a task, a clock advance, its PNG
        create = {"model": "cogview-4", "prompt": "a packaged fox", "size": "1440*720"}
        _, _, created = get(f"{url}/api/v1/images/generations", create)
        task_id = json.loads(created)["data"]["task_id"]
        get(f"{url}/_emulator/clock/advance", {"seconds": 10})
        _, _, polled = get(f"{url}/api/v1/tasks/{task_id}")
        image_url = json.loads(polled)["data"]["output"]["image_url"]
        _, _, png = get(image_url)
        assert png.startswith(b"\x89PNG")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(timeout=10)
        finally:
            server.kill()
            server.stdout.close()
            server.stderr.close()
    assert code == 0


USER_TESTS = """
import os

import httpx

import emulator


def test_the_emulator_comes_from_the_installed_wheel():
    assert emulator.__file__.startswith(os.environ["AIO_PACKAGE_PREFIX"])


def test_live_server(aio_emulator):
    body = {"model": "cogview-4", "prompt": "a red fox", "size": "1024*1024"}
    with httpx.Client(base_url=aio_emulator.url, headers=aio_emulator.headers) as client:
        task_id = client.post("/api/v1/images/generations", json=body).json()["data"]["task_id"]
        task = client.get(f"/api/v1/tasks/{task_id}").json()["data"]
        assert task["status"] == "completed"
        assert client.get(task["output"]["image_url"]).content.startswith(b"\\x89PNG")


def test_in_process(aio_emulator_respx):
    body = {"model": "imagen4", "prompt": "a snowy owl", "aspect_ratio": "16:9"}
    created = httpx.post(
        "https://apiin.one/api/v1/images/generations", json=body, headers=aio_emulator_respx.headers
    )
    assert created.json()["data"]["status"] == "IN_PROGRESS"
    assert aio_emulator_respx.credits() == 1_000_000 - 8
"""


def test_a_user_suite_runs_both_fixtures(installed: Installed) -> None:
    (installed.home / "test_user_suite.py").write_text(textwrap.dedent(USER_TESTS))
    env = {**installed.env, "AIO_PACKAGE_PREFIX": str(installed.bin.parent)}
    done = subprocess.run(
        [str(installed.bin / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=installed.home,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout, done.stdout


def test_the_readme_editable_install_line_works(installed: Installed, tmp_path: Path) -> None:
    bin_dir, env = new_environment(tmp_path / "venv")
    editable = Installed(installed.source, bin_dir, env, installed.home)
    run(
        ["bash", "-euo", "pipefail", "-c", readme_install_lines()[0]], editable, cwd=editable.source
    )
    done = run([str(bin_dir / "aio-emulator"), "scenarios"], editable, cwd=editable.home)
    assert [line.split()[0] for line in done.stdout.splitlines()] == READY_SCENARIOS
    run(
        [str(bin_dir / "python"), "-c", "import respx, emulator.plugin"],
        editable,
        cwd=editable.home,
    )
