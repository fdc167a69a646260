"""The import rules docs/architecture.md states hold in the code: tasks/ never imports
fewshot; nn/ and maths/ stand alone; collect/ builds only on nn/ and maths/; eval/ never
imports an algorithm; an algorithm imports no other algorithm (but the public package of
one it builds on) and nothing of run/."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BUILDS_ON = {"leep": {"ppo"}}  # algorithm -> the algorithms whose packages it builds on


def imported(path: Path, *, names_from: bool = True) -> set[str]:
    """The modules a file imports, and (names_from) the names it imports from them."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            if names_from:
                names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def parts_imported(folder: str) -> dict[Path, set[str]]:
    """For each module under `folder`, the fewshot parts it imports (collect, algos.maml,
    registry, ...); "fewshot" for `import fewshot` or `from fewshot import ...`."""
    found = {}
    for path in (ROOT / folder).rglob("*.py"):
        parts = set()
        for name in imported(path):
            pieces = name.split(".")
            if pieces[0] == "fewshot":
                depth = 3 if pieces[1:2] == ["algos"] else 2
                parts.add(".".join(pieces[1:depth]) or "fewshot")
        found[path] = parts
    return found


def test_the_import_rules_of_the_architecture_doc_hold():
    assert "`tasks/` never imports `fewshot`." in (DOCS / "architecture.md").read_text()
    for path, parts in parts_imported("tasks").items():
        assert not parts, f"{path} imports fewshot"
    for folder, allowed in (("fewshot/nn", set()), ("fewshot/maths", set()),
                            ("fewshot/collect", {"nn", "maths", "checks"})):
        for path, parts in parts_imported(folder).items():
            assert parts <= allowed | {folder.split("/")[1]}, (path, parts)
    for path, parts in parts_imported("fewshot/eval").items():
        assert not any(p.startswith("algos") for p in parts), (path, parts)
    for algo in (ROOT / "fewshot" / "algos").iterdir():
        if algo.is_dir() and (algo / "__init__.py").exists():
            for path, parts in parts_imported(f"fewshot/algos/{algo.name}").items():
                others = {p.split(".")[1] for p in parts if p.startswith("algos") and
                          p != f"algos.{algo.name}"}
                assert others <= BUILDS_ON.get(algo.name, set()), (path, parts)
                assert "run" not in parts, (path, parts)
                for module in imported(path, names_from=False):  # the public package only
                    other = module.split(".")[2] if module.startswith("fewshot.algos.") else ""
                    assert other not in others or module == f"fewshot.algos.{other}", (
                        path, module)

