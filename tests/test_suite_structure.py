"""The suite's own rules: test modules stand alone. A test module imports shared helpers from tests/support.py (or
gets them from fixtures in tests/conftest.py), never from another test module or from a conftest."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def is_test_module(dotted: str) -> bool:
    """tests.<...>.test_x or a conftest, or anything inside one."""
    parts = dotted.split(".")
    return parts[0] == "tests" and any(part.startswith("test_") or part == "conftest" for part in parts[1:])


def imported_test_modules(source: str, module: str) -> list[str]:
    """The test modules (and conftests) that the source of `module` (dotted, e.g. tests.unit.test_x) imports."""
    package = module.split(".")[:-1]
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if is_test_module(alias.name)]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            if is_test_module(target):
                found.append(target)
            else:
                # `from tests.unit import test_x` imports a module by name.
                found += [f"{target}.{a.name}" for a in node.names if is_test_module(f"{target}.{a.name}")]
    return found


def test_no_test_module_imports_another() -> None:
    modules = sorted(TESTS.rglob("test_*.py"))
    assert len(modules) > 10, modules  # the search found the suite
    offenders = {}
    for path in modules:
        dotted = ".".join(path.relative_to(TESTS.parent).with_suffix("").parts)
        imported = imported_test_modules(path.read_text(encoding="utf-8"), dotted)
        if imported:
            offenders[str(path.relative_to(TESTS.parent))] = imported
    assert not offenders, (
        f"test modules importing other test modules (move the helper to tests/support.py): {offenders}"
    )


def test_the_check_recognises_every_spelling_of_such_an_import() -> None:
    module = "tests.integration.test_here"
    spellings = {
        "import tests.integration.test_other": ["tests.integration.test_other"],
        "import tests.e2e.test_other as other": ["tests.e2e.test_other"],
        "from tests.integration.test_other import helper": ["tests.integration.test_other"],
        "from tests.integration import test_other": ["tests.integration.test_other"],
        "from .test_other import helper": ["tests.integration.test_other"],
        "from . import test_other": ["tests.integration.test_other"],
        "from ..unit.test_other import helper": ["tests.unit.test_other"],
        "from tests.conftest import LiveServer": ["tests.conftest"],
        "from tests import conftest": ["tests.conftest"],
        "def f():\n    from tests.unit.test_other import helper": ["tests.unit.test_other"],
        "from tests.support import TenantApi": [],
        "from tests import support": [],
        "import app.ticket.service": [],
        "from . import support_here": [],
    }
    for source, expected in spellings.items():
        assert imported_test_modules(source, module) == expected, source
