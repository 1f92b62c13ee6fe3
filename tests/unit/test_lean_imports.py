"""A polling daemon imports only what its configuration uses (issue 32).

Read from the source, as test_layers.py reads it: the modules the daemon's start path
imports (`goe2mqtt` -> cli.main -> dispatch's config loading and _run -> the bridge,
and the HTTP server, on by default), and everything they import when loaded, must not
reach the simulator, the demo, the websocket, bcrypt, the sites, the session reports,
prometheus_client, difflib or ctypes: those are imported inside the branch that uses them;
nor pydantic, which config/schema replaced. The daemon itself, run with such a config, is
checked in tests/integration/test_lean.py.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from goe2mqtt.cli import STRUCTLOG_EXTRAS, import_structlog_plain
from goe2mqtt.cli.parser import MODEL_NAMES
from goe2mqtt.sim.models import MODELS

PACKAGE = Path(__file__).resolve().parents[2] / "goe2mqtt"

# (module, function): the functions on the start path whose own imports run at start.
START = [
    ("goe2mqtt.__main__", None),
    ("goe2mqtt.cli", "main"),
    ("goe2mqtt.cli.dispatch", "_load"),
    ("goe2mqtt.cli.dispatch", "_run"),
    ("goe2mqtt.bridge.process", "run"),  # the HTTP server, http.enabled by default
]
NOT_FOR_POLLING = {
    "goe2mqtt.sim", "goe2mqtt.sim.demo", "goe2mqtt.sim.serve", "goe2mqtt.sim.simulator",
    "goe2mqtt.goe.websocket", "goe2mqtt.goe.ws_protocol", "goe2mqtt.goe.ws_transport",
    "goe2mqtt.goe.charger_mqtt", "goe2mqtt.goe.ws_bcrypt", "bcrypt",
    "goe2mqtt.site", "goe2mqtt.site.controller", "goe2mqtt.bridge.site_runner",
    "goe2mqtt.ledger.report", "goe2mqtt.web.metrics", "prometheus_client", "rich",
    "difflib",  # config/problems' "did you mean": only for a file with an unknown key
    "ctypes",  # bridge/memory's malloc_trim: only once a process grew enough to trim
    "pydantic", "pydantic_core",  # config/schema validates: pydantic's first model was 5.5 MiB
}  # fmt: skip


def _path(module: str) -> Path | None:
    if module == "goe2mqtt":
        return PACKAGE / "__init__.py"
    relative = Path(*module.split(".")[1:])
    for candidate in (PACKAGE / relative.with_suffix(".py"), PACKAGE / relative / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _named(node: ast.Import | ast.ImportFrom) -> set[str]:
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    assert node.module is not None, "goe2mqtt imports absolutely"
    assert node.level == 0, "goe2mqtt imports absolutely"
    # `from package import module` loads that module too.
    return {node.module} | {f"{node.module}.{a.name}" for a in node.names
                            if _path(f"{node.module}.{a.name}") is not None}  # fmt: skip


def _loaded_with(body: list[ast.stmt]) -> set[str]:
    """What running these statements imports: functions' bodies are not run, the
    branches of an if or a try are (all of them, but `if TYPE_CHECKING:`)."""
    found: set[str] = set()
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found |= _named(node)
        elif isinstance(node, ast.If):
            if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                found |= _loaded_with(node.body) | _loaded_with(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, *(h.body for h in node.handlers), node.orelse):
                found |= _loaded_with(block)
        elif isinstance(node, ast.With | ast.ClassDef):
            found |= _loaded_with(node.body)
    return found


def _function(tree: ast.Module, name: str) -> list[ast.stmt]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            return [n for n in ast.walk(node) if isinstance(n, ast.Import | ast.ImportFrom)]
    raise AssertionError(f"no function {name}")


def _with_packages(module: str) -> set[str]:
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def start_path_modules() -> set[str]:
    """Every module the daemon's start path imports, as far as goe2mqtt's own source
    says (third-party libraries are named, not followed)."""
    todo: set[str] = set()
    for module, function in START:
        path = _path(module)
        assert path is not None, module
        tree = ast.parse(path.read_text())
        todo |= {module} | (_loaded_with(_function(tree, function)) if function else set())
    seen: set[str] = set()
    while todo:
        module = todo.pop()
        for name in _with_packages(module) - seen:
            seen.add(name)
            path = _path(name) if name.startswith("goe2mqtt") else None
            if path is not None:
                todo |= _loaded_with(ast.parse(path.read_text()).body) - seen
    return seen


def test_the_start_path_of_a_polling_daemon_leaves_out_what_it_does_not_use() -> None:
    loaded = start_path_modules()
    assert {"goe2mqtt.bridge.process", "goe2mqtt.goe.client", "goe2mqtt.web.server"} <= loaded
    assert sorted(NOT_FOR_POLLING & loaded) == []


def test_the_parser_names_the_simulators_models_without_importing_it() -> None:
    assert tuple(MODELS) == MODEL_NAMES


@pytest.fixture
def fresh_structlog() -> Iterator[None]:
    """structlog (and its extras) out of sys.modules for the test, put back after it."""

    def ours(name: str) -> bool:
        return any(name == top or name.startswith(f"{top}.")
                   for top in ("structlog", *STRUCTLOG_EXTRAS))  # fmt: skip

    saved = {name: module for name, module in sys.modules.items() if ours(name)}
    for name in saved:
        del sys.modules[name]
    yield
    for name in [name for name in sys.modules if ours(name)]:
        del sys.modules[name]
    sys.modules.update(saved)


@pytest.mark.usefixtures("fresh_structlog")
def test_structlog_comes_without_rich_and_rich_stays_importable() -> None:
    import_structlog_plain()
    import structlog.dev

    assert structlog.dev.rich is None  # plain tracebacks, as in a plain install
    assert "rich" not in sys.modules
    assert "greenlet" not in sys.modules
    if importlib.util.find_spec("rich") is not None:  # installed here: still usable
        import rich

        assert rich.__name__ == "rich"
