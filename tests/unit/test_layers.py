"""The folder list is the map: imports run one way, top to bottom, with no circle."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "goe2mqtt"

# Top to bottom. A room imports only from rooms below it (and from itself); rooms on
# one floor know nothing of each other.
FLOORS: tuple[frozenset[str], ...] = (
    frozenset({"__main__"}),
    frozenset({"cli"}),
    frozenset({"sim"}),
    frozenset({"bridge"}),
    # web: the operator's HTTP surface; it reads the bridge through a Protocol of its own.
    frozenset({"charger", "web"}),
    frozenset({"homeassistant"}),
    frozenset({"commands", "mqtt", "ledger", "site"}),
    frozenset({"goe", "catalogue"}),
    frozenset({"config"}),
    frozenset({"util", "__init__"}),
)


def _room(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


def _floor(room: str) -> int:
    return next(i for i, rooms in enumerate(FLOORS) if room in rooms)


def _imports(path: Path) -> set[str]:
    """The goe2mqtt rooms a module imports (at any depth, type-checking ones too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] == "goe2mqtt":
                if len(parts) > 1:
                    found.add(parts[1])
                else:  # from goe2mqtt import __version__ / a room
                    found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "goe2mqtt" and len(parts) > 1:
                    found.add(parts[1])
    return {room if room != "__version__" else "__init__" for room in found}


def test_every_room_has_a_floor() -> None:
    rooms = {_room(p) for p in PACKAGE.rglob("*.py")}
    known = set().union(*FLOORS)
    assert rooms <= known, f"rooms without a floor: {sorted(rooms - known)}"


def test_imports_run_top_to_bottom() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        room = _room(path)
        for imported in _imports(path) - {room}:
            if imported in {"PROJECT_URL"}:
                imported = "__init__"
            if _floor(imported) <= _floor(room):
                wrong.append(f"{path.relative_to(PACKAGE)} imports {imported}")
    assert wrong == [], "\n".join(wrong)


def test_no_module_imports_itself_in_a_circle() -> None:
    modules = {
        ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts): p
        for p in PACKAGE.rglob("*.py")
    }
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module in modules:
                    targets.add(node.module)
                for alias in node.names:
                    if f"{node.module}.{alias.name}" in modules:
                        targets.add(f"{node.module}.{alias.name}")
        edges[name] = targets - {name}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> list[str] | None:
        state[node] = 1
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                return [*trail, node, target]
            if target not in state:
                found = visit(target, [*trail, node])
                if found:
                    return found
        state[node] = 2
        return None

    for module in sorted(modules):
        if module not in state:
            circle = visit(module, [])
            assert circle is None, " -> ".join(circle)
