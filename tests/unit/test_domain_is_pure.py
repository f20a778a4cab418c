"""The domain layer imports only the standard library, its two JSON serialisers (rfc8785, and orjson for
canonical JSON's fast path) and itself: no web, ORM or settings code."""

import ast
import sys
from pathlib import Path

import pytest

import app.domain

DOMAIN_ROOT = Path(app.domain.__path__[0])
FORBIDDEN = frozenset(
    {"fastapi", "starlette", "sqlalchemy", "alembic", "pydantic", "pydantic_settings", "uvicorn", "psycopg"}
)
ALLOWED_THIRD_PARTY = frozenset({"rfc8785", "orjson"})
DOMAIN_PACKAGE = "app.domain"
MODULES = sorted(DOMAIN_ROOT.rglob("*.py"))


def imported_modules(source: str) -> list[str]:
    """Every absolute module an import statement names (relative imports stay inside the package)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            names.append(node.module)
    return names


def is_allowed(module: str) -> bool:
    top = module.partition(".")[0]
    if top in sys.stdlib_module_names or top in ALLOWED_THIRD_PARTY:
        return True
    return module == DOMAIN_PACKAGE or module.startswith(DOMAIN_PACKAGE + ".")


def test_the_walk_finds_the_domain_modules() -> None:
    names = {path.relative_to(DOMAIN_ROOT).as_posix() for path in MODULES}
    assert {
        "il6.py",
        "eligibility.py",
        "risk.py",
        "classifiers/registry.py",
        "classifiers/manifest.py",
    } <= names


def test_the_checker_catches_forbidden_imports() -> None:
    source = "import fastapi\nfrom sqlalchemy.orm import Session\nfrom pydantic import BaseModel\n"
    modules = imported_modules(source)
    assert modules == ["fastapi", "sqlalchemy.orm", "pydantic"]
    assert not any(is_allowed(module) for module in modules)
    assert not is_allowed("app.api.deps")
    assert not is_allowed("app.settings")
    assert not is_allowed("app.domainx")
    assert is_allowed("decimal")
    assert is_allowed("rfc8785")
    assert is_allowed("app.domain.il6")


@pytest.mark.parametrize(
    "path", [pytest.param(path, id=path.relative_to(DOMAIN_ROOT).as_posix()) for path in MODULES]
)
def test_domain_module_imports_only_stdlib_its_serialisers_and_the_domain(path: Path) -> None:
    modules = imported_modules(path.read_text(encoding="utf-8"))
    tops = {module.partition(".")[0] for module in modules}
    assert not tops & FORBIDDEN, f"{path.name} imports {sorted(tops & FORBIDDEN)}"
    assert [module for module in modules if not is_allowed(module)] == []
