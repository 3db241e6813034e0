"""The documentation site (docs/) tells the truth about today's code.

``make test`` builds the site with ``mkdocs build --strict`` (broken links, missing anchors and
pages left out of the navigation fail there). These tests check what a build cannot: that the
examples run, that the reference pages name everything the code offers, and that no link of the
README, the changelog or the docs leaves the repository except to a public URL.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from emulator import control, dashboard, openapi
from emulator.app import create_app
from emulator.catalogue import Catalogue
from emulator.cli import build_parser
from emulator.config import ENV_PREFIX, Config
from emulator.handle import EmulatorHandle
from emulator.inprocess import RespxEmulatorHandle
from emulator.marker import OPTIONS
from emulator.scenarios import ScenarioError, loads
from emulator.server import LiveServer

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
MARKDOWN = [ROOT / "README.md", ROOT / "CHANGELOG.md", *PAGES]


def page(name: str) -> str:
    return (DOCS / name).read_text("utf-8")


def blocks(text: str, language: str) -> list[str]:
    """The fenced code blocks of one language (fences at the start of a line)."""
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.S | re.M)


# -- links --------------------------------------------------------------------------------

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)[^)]*\)|<(https?://[^>]+)>")


def links(path: Path) -> list[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text("utf-8"), flags=re.S | re.M)
    text = re.sub(r"`[^`\n]*`", "", text)  # code spans are not links
    return [a or b for a, b in LINK.findall(text)]


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_stays_in_the_repository_or_is_public(path: Path) -> None:
    problems = []
    for target in links(path):
        url = urlsplit(target)
        if url.scheme in ("http", "https"):
            if url.hostname in (None, "localhost") or url.hostname.startswith("127."):
                problems.append(f"{target}: not a public URL")
            continue
        if url.scheme or target.startswith("/"):
            problems.append(f"{target}: neither relative nor http(s)")
            continue
        if not url.path:  # an anchor on the same page (mkdocs --strict checks the docs' ones)
            continue
        resolved = (path.parent / url.path).resolve()
        if ROOT not in (resolved, *resolved.parents):
            problems.append(f"{target}: outside the repository")
        elif not resolved.exists():
            problems.append(f"{target}: no such file")
    assert problems == [], f"{path.relative_to(ROOT)}: " + "; ".join(problems)


def test_the_navigation_lists_every_page() -> None:
    nav = (ROOT / "mkdocs.yml").read_text("utf-8")
    listed = set(re.findall(r":\s+(\S+\.md)\s*$", nav, re.M))
    assert {str(p.relative_to(DOCS)) for p in PAGES} == listed


# -- examples that run ----------------------------------------------------------------------


def test_getting_started_shows_the_readme_examples() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    for language in ("sh", "python"):
        for block in blocks(readme, language):
            if "make serve" not in block:  # the two commands read differently on each page
                assert block in blocks(page("getting-started.md"), language)


@pytest.mark.parametrize(
    "example", sorted(p.name for p in (ROOT / "tests/examples").glob("test_*.py"))
)
def test_the_pytest_page_shows_every_example_file(example: str) -> None:
    assert f'```python\n--8<-- "tests/examples/{example}"\n```' in page("pytest.md")


def scenario_blocks() -> list[pytest.ParameterSet]:
    found = []
    for path in PAGES:
        for n, block in enumerate(blocks(path.read_text("utf-8"), "yaml")):
            if block.startswith("# yaml-language-server"):
                continue  # the editor line, not a scenario
            name = f"{path.relative_to(DOCS)}[{n}]"
            found.append(pytest.param(block, id=name))
    return found


@pytest.mark.parametrize("block", scenario_blocks())
def test_every_scenario_in_the_docs_is_valid(block: str) -> None:
    text = block if re.match(r"^name:", block, re.M) else f"name: fragment\n{block}"
    try:
        loads(text, source="docs")
    except ScenarioError as exc:
        pytest.fail(str(exc))


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize(
    "name",
    ["control-api.md", "scenarios/index.md", "api/videos.md", "api/speech.md", "api/tools.md"],
)
def test_the_curl_examples_run(name: str) -> None:
    (script,) = [b for b in blocks(page(name), "sh") if b.startswith("curl ")]
    with LiveServer(create_app(Config(seed=3, clock="virtual"))) as live:
        script = script.replace("http://127.0.0.1:8000", live.url).replace("curl -s", "curl -sf")
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(done.stdout.splitlines()) >= 1


def test_the_pytest_page_conftest_and_marker_examples_run(pytester: pytest.Pytester) -> None:
    text = page("pytest.md")
    (conftest,) = [b for b in blocks(text, "python") if b.startswith("# conftest.py")]
    (marker,) = [b for b in blocks(text, "python") if b.startswith("@pytest.mark.aio_emulator(")]
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider -p no:hypothesispytest\n")
    pytester.makeconftest("import pytest\n\n" + conftest)
    pytester.makepyfile(
        "import pytest\n\n"
        + marker
        + "def test_marked(aio_emulator):\n"
        + "    assert aio_emulator.api_key == 'aio_mine' and aio_emulator.credits() == 10\n"
        + "    assert aio_emulator.emulator.config.only_known_keys\n"
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


# -- reference pages name everything the code offers ----------------------------------------


def test_the_cli_page_names_every_flag_and_environment_variable() -> None:
    text = page("cli.md")
    subcommands = next(a for a in build_parser()._actions if a.dest == "command").choices
    missing = [
        f"{name} {flag}"
        for name, parser in subcommands.items()
        for action in parser._actions
        for flag in action.option_strings
        if flag.startswith("--") and flag != "--help" and f"`{flag}" not in text
    ]
    missing += [
        ENV_PREFIX + field.upper()
        for field in Config.__dataclass_fields__
        if f"`{ENV_PREFIX}{field.upper()}" not in text or f"`{field}`" not in text
    ]
    assert missing == []


def test_the_control_api_page_names_every_route() -> None:
    text = page("control-api.md")
    calls = [
        f"{method} {route.path}"
        for route in (*control.routes, *dashboard.routes, *openapi.routes)
        for method in sorted(route.methods - {"HEAD"})
    ]
    assert [call for call in calls if not re.search(re.escape(call) + r"[`\[]", text)] == []


def test_the_scenario_pages_name_every_key_and_ready_scenario() -> None:
    schema = json.loads((ROOT / "emulator/data/scenario.schema.json").read_text("utf-8"))
    keys: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            keys.update(
                node.get("properties", {}) if isinstance(node.get("properties"), dict) else ()
            )
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    reference = page("scenarios/reference.md")
    assert sorted(k for k in keys if not re.search(rf"(`{k}`|\b{k}:)", reference)) == []
    ready = sorted(p.stem for p in (ROOT / "emulator/data/scenarios").glob("*.yaml"))
    listed = re.findall(r"^\| `([a-z-]+)` \|", page("scenarios/index.md"), re.M)
    assert sorted(listed) == ready


#: the page of each create route's families
ROUTE_PAGES = {"images": "api/images.md", "videos": "api/videos.md", "speech": "api/speech.md",
               "remove-bg": "api/tools.md", "upscale": "api/tools.md", "face-swap": "api/tools.md",
               "music": "api/music.md", "music-cover": "api/music.md"}  # fmt: skip


def test_the_family_pages_list_every_family_of_the_catalogue() -> None:
    catalogue = json.loads((ROOT / "emulator/data/models.json").read_text("utf-8"))
    assert set(ROUTE_PAGES) == set(catalogue["routes"])
    shapes = {m.family: m.id_shape for m in Catalogue.load().models.values()}
    for family in catalogue["families"]:
        text = page(ROUTE_PAGES[family.get("route", "images")])
        if family.get("route") == "music-cover":  # (a row of the page's route table)
            assert f"`{shapes[family['family']]}`" in text
            continue
        rows = dict(re.findall(r"^\| `([^`]+)` \| (.*)$", text, re.M))
        row = rows[family["family"]]
        assert f"`{shapes[family['family']]}`" in row
        for model in family["models"]:
            assert f"`{model}`" in row or f"`-{model.rsplit('-', 1)[1]}`" in row, model


def test_the_pytest_page_names_every_fixture_option_and_handle_method() -> None:
    text = page("pytest.md")
    fixtures = ["aio_emulator", "aio_emulator_respx", "aio_emulator_config", "aio_emulator_server"]
    public = {
        name
        for cls in (EmulatorHandle, RespxEmulatorHandle)
        for name in [*vars(cls), *getattr(cls, "__annotations__", {})]
        if not name.startswith("_")
    }
    public |= {"url", "api_key", "emulator", "router", "serve"}  # set in __init__
    names = [*fixtures, *OPTIONS, *public]
    assert [n for n in names if f"`{n}" not in text] == []


def test_the_architecture_page_lists_every_module() -> None:
    text = page("architecture.md")
    package = ROOT / "emulator"
    modules = sorted(p.name for p in package.glob("*.py"))
    packages = sorted(p.parent.name + "/" for p in package.glob("*/__init__.py"))
    assert [m for m in [*modules, *packages] if f"| `{m}` |" not in text] == []
    for sub in packages:  # each module of a package is named in its row
        row = next(line for line in text.splitlines() if line.startswith(f"| `{sub}` |"))
        inner = sorted(p.name for p in (package / sub).glob("*.py") if p.name != "__init__.py")
        assert [m for m in inner if f"`{m}`" not in row] == []
    for path in (ROOT / "emulator").glob("*.py"):
        assert ast.get_docstring(ast.parse(path.read_text("utf-8"))), f"{path.name}: no docstring"


def test_no_module_imports_a_private_name_of_another() -> None:
    """What the architecture page says: a module's ``_name`` is its own (what others need has
    a public name, e.g. the OpenAPI parts in ``openapi_parts.py``)."""
    assert "A private name is its module's own" in page("architecture.md")
    found = set()
    package = ROOT / "emulator"
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if not isinstance(node, ast.ImportFrom) or not (
                node.level or (node.module or "").startswith("emulator")
            ):
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    where = path.relative_to(package).as_posix()
                    found.add(f"{where}: {(node.module or '').lstrip('.')}.{alias.name}")
    assert found == set()


@pytest.mark.parametrize(
    ("name", "path", "body", "task_id"),
    [
        ("api/images.md", "/api/v1/images/generations",
         {"model": "cogview-4", "prompt": "a red fox", "size": "1024*1024"}, r"n48[0-9a-f]{16}_cv4"),
        ("api/videos.md", "/api/v1/videos/generations",
         {"model": "kling-3", "prompt": "a red fox"}, r"n75[0-9a-f]{16}_kling3"),
    ],
)  # fmt: skip
def test_the_task_body_shown_is_the_one_served(
    name: str, path: str, body: dict[str, str], task_id: str
) -> None:
    from starlette.testclient import TestClient

    (shown,) = blocks(page(name), "json")
    shown = json.loads(shown)
    auth = {"Authorization": "Bearer aio_docs"}
    with TestClient(create_app(Config(seed=1, clock="virtual", scenario="instant"))) as client:
        created = client.post(path, json=body, headers=auth).json()
        served = client.get(f"/api/v1/tasks/{created['data']['task_id']}", headers=auth).json()
    assert shown.keys() == served.keys() and shown["data"].keys() == served["data"].keys()
    assert shown["data"]["output"].keys() == served["data"]["output"].keys()
    assert shown["data"]["credits_consumed"] == served["data"]["credits_consumed"]
    assert re.fullmatch(task_id, shown["data"]["task_id"])
