"""Shape rules the linters do not check: no function over 120 lines outside tests and generated code,
and no blanket suppression comment (`# noqa` without codes, `# type: ignore` without a code).

Pure parsing of the source tree (ast, tokenize): well under a second."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_FUNCTION_LINES = 120

ALLOWED_LONG_FUNCTIONS = {}
"""Known violations, each with its reason; remove an entry when its function is split."""


def _generated(path: Path) -> bool:
    return "_pb2" in path.name  # protoc output (scripts/gen_protos)


def _python_sources(*folders: str) -> list[Path]:
    files: list[Path] = []
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if "node_modules" in rel.parts or _generated(path):
                continue
            files.append(path)
    return files


def _scripts() -> list[Path]:
    """Python programs without a .py suffix (scripts/gen_protos)."""
    found = []
    for folder in ("scripts", ".ci"):
        for path in sorted((ROOT / folder).glob("*")):
            if path.is_file() and path.read_bytes()[:64].startswith(b"#!") and b"python" in path.read_bytes()[:64]:
                found.append(path)
    return found


def _long_functions(path: Path, root: Path = ROOT) -> dict[str, int]:
    """'relative/path.py::qualified.name' -> lines, for every function longer than the limit."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    rel = path.relative_to(root).as_posix()
    found: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    lines = (child.end_lineno or child.lineno) - child.lineno + 1
                    if lines > MAX_FUNCTION_LINES:
                        found[f"{rel}::{name}"] = lines
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def _all_long_functions() -> dict[str, int]:
    found: dict[str, int] = {}
    for path in _python_sources("radpath") + _scripts():
        found.update(_long_functions(path))
    return found


def test_no_function_over_120_lines_outside_tests():
    long = _all_long_functions()
    new = {name: lines for name, lines in long.items() if name not in ALLOWED_LONG_FUNCTIONS}
    assert not new, f"functions over {MAX_FUNCTION_LINES} lines (split them into named steps): " + ", ".join(
        f"{name} ({lines} lines)" for name, lines in sorted(new.items())
    )


def test_the_allow_list_names_only_functions_still_too_long():
    stale = sorted(set(ALLOWED_LONG_FUNCTIONS) - set(_all_long_functions()))
    assert not stale, f"no longer over {MAX_FUNCTION_LINES} lines (or gone): remove {stale} from ALLOWED_LONG_FUNCTIONS"


def _function(name: str, lines: int, indent: str = "", prefix: str = "def") -> str:
    """Source of a function exactly `lines` lines long."""
    return f"{indent}{prefix} {name}():\n" + "".join(f"{indent}    x = {i}\n" for i in range(lines - 1))


def test_the_length_rule_counts_nested_and_async_functions(tmp_path):
    limit = MAX_FUNCTION_LINES
    source = (
        _function("at_limit", limit)
        + "class C:\n"
        + _function("method", limit + 1, indent="    ", prefix="async def")
        + _function("outer", 3)
        + _function("inner", limit + 1, indent="    ")
    )
    (tmp_path / "m.py").write_text(source)
    found = _long_functions(tmp_path / "m.py", root=tmp_path)
    assert found == {"m.py::C.method": limit + 1, "m.py::outer": 3 + limit + 1, "m.py::outer.inner": limit + 1}


BLANKET_NOQA = re.compile(r"#\s*noqa(?!\s*:\s*[A-Z]+[0-9]+)", re.IGNORECASE)
BLANKET_TYPE_IGNORE = re.compile(r"#\s*type:\s*ignore(?!\[[a-z0-9-]+(,\s*[a-z0-9-]+)*\])")


def blanket_suppressions(source: str) -> list[tuple[int, str]]:
    """(line, comment) of every blanket `noqa` / `type: ignore` comment (comments only, not strings)."""
    found = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT and (BLANKET_NOQA.search(tok.string) or BLANKET_TYPE_IGNORE.search(tok.string)):
            found.append((tok.start[0], tok.string))
    return found


def test_no_blanket_noqa_or_type_ignore():
    bad = [
        f"{path.relative_to(ROOT)}:{line}: {comment}"
        for path in _python_sources("radpath", "tests") + _scripts()
        for line, comment in blanket_suppressions(path.read_text(encoding="utf-8"))
    ]
    assert not bad, "blanket suppressions (name the rule, e.g. `# noqa: F401`, `# type: ignore[attr-defined]`):\n" + (
        "\n".join(bad)
    )


def test_the_suppression_rule_tells_blanket_from_specific():
    source = (
        "a = 1  # noqa\n"
        "b = 1  # noqa: F401\n"
        "c = 1  # NOQA:E501,F401\n"
        "d = 1  # type: ignore\n"
        "e = 1  # type: ignore[attr-defined]\n"
        "f = 1  # type: ignore[attr-defined, misc]\n"
        "g = '# noqa'  # a string is not a comment\n"
        "h = 1  # type: ignore  # noqa: E501\n"
    )
    assert [line for line, _ in blanket_suppressions(source)] == [1, 4, 8]
