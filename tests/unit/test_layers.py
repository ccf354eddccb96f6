"""The import layers, read from the source: the core knows nothing of the actors or the CLI, the
actors nothing of the CLI or the test fakes, and the demo runs nothing from agentproxy.testing."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLI_LAYER = ("agentproxy.cli", "agentproxy.launch", "agentproxy.demo", "agentproxy.__main__")
# What starts actor trees sits above both the core and the actors: the runtime and the Python API over
# it, the server over that, and a worker host's own trees.
COMPOSITION = ("agentproxy.runtime", "agentproxy.api", "agentproxy.server", "agentproxy.worker")
ACTORS = "agentproxy.actors"
TESTING = "agentproxy.testing"


def module_name(path: Path) -> str:
    if path.is_relative_to(ROOT / "actors"):
        parts = ["agentproxy", "actors", *path.relative_to(ROOT / "actors").with_suffix("").parts]
    else:
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    paths = [*(ROOT / "agentproxy").rglob("*.py"), *(ROOT / "actors").rglob("*.py")]
    return {module_name(path): path for path in paths}


def imported(path: Path) -> set[str]:
    """Every module the file imports, at any depth of the file (lazy imports count too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def within(name: str, packages: tuple[str, ...] | str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in ((packages,) if isinstance(packages, str) else packages))


def layer_violations(source_filter, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{name} imports {target}"
        for name, path in sorted(modules().items())
        if source_filter(name)
        for target in sorted(imported(path))
        if within(target, forbidden)
    ]


def is_core(name: str) -> bool:
    # The package's root only names the Python API (lazily): it is its front, not the core.
    return name != "agentproxy" and not within(name, (*CLI_LAYER, *COMPOSITION, ACTORS, TESTING))


def test_the_modules_are_found() -> None:
    found = modules()
    assert "agentproxy.actors.dispatcher" in found and "agentproxy.policy" in found and "agentproxy.cli" in found


def test_the_core_imports_neither_actors_nor_the_cli_layer_nor_the_fakes() -> None:
    assert layer_violations(is_core, (ACTORS, *CLI_LAYER, *COMPOSITION, TESTING)) == []


def test_actors_import_neither_the_cli_layer_nor_the_fakes() -> None:
    assert layer_violations(lambda name: within(name, ACTORS), (*CLI_LAYER, *COMPOSITION, TESTING)) == []


def test_no_module_imports_a_top_level_actors_package() -> None:
    assert layer_violations(lambda name: True, ("actors",)) == []


@pytest.mark.parametrize("module", ["agentproxy.demo", "agentproxy.cli", "agentproxy.launch"])
def test_the_product_runs_nothing_from_the_test_fakes(module: str) -> None:
    """Not even by name: `python -m agentproxy.testing...` would break an install without the fakes."""
    assert TESTING not in modules()[module].read_text(encoding="utf-8")


def test_the_checker_sees_imports_that_exist() -> None:
    """The composition root does import the actors: a checker blind to that would pass anything."""
    assert layer_violations(lambda name: name == "agentproxy.runtime", (ACTORS,))
    assert layer_violations(lambda name: name == "agentproxy.launch", ("agentproxy.runtime",))  # a lazy import
