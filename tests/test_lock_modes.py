"""The lock modes of the product's one lock order (tokens/locks.py), checked on
the source: no row lock in the product is ``FOR UPDATE`` (it blocks the ``FOR KEY
SHARE`` that every insert referencing the row takes for its foreign-key check,
which made usage batches deadlock behind an auto-increase). A new
``select_for_update()`` without ``no_key=True``, or raw SQL with ``FOR UPDATE``
or ``FOR SHARE``, fails here, on every database."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("accounts", "analytics", "asksage_admin", "tokens")


def product_sources() -> list[Path]:
    return sorted(
        path
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
    )


def test_the_sources_are_found():
    names = {p.relative_to(ROOT).as_posix() for p in product_sources()}
    assert {"tokens/locks.py", "tokens/services/metering/holds.py"} <= names


@pytest.mark.parametrize(
    "path", product_sources(), ids=lambda p: p.relative_to(ROOT).as_posix()
)
def test_every_row_lock_is_for_no_key_update(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    problems = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "select_for_update"
        ):
            no_key = [k for k in node.keywords if k.arg == "no_key"]
            if not (
                no_key
                and isinstance(no_key[0].value, ast.Constant)
                and no_key[0].value.value is True
            ):
                problems.append(f"line {node.lineno}: select_for_update without no_key")
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            sql = " ".join(node.value.upper().split())
            if "SELECT" in sql and ("FOR UPDATE" in sql or "FOR SHARE" in sql):
                problems.append(f"line {node.lineno}: raw SQL locks FOR UPDATE/SHARE")
    assert problems == []


def test_the_check_catches_a_for_update(tmp_path):
    """The check above would see the old mode (it cannot pass vacuously)."""
    source = (
        "Organization.objects.select_for_update().get(pk=1)\n"
        "sql = 'SELECT 1 FROM t WHERE id = %s FOR UPDATE'\n"
    )
    path = tmp_path / "old.py"
    path.write_text(source, encoding="utf-8")
    with pytest.raises(AssertionError):
        test_every_row_lock_is_for_no_key_update(path)
