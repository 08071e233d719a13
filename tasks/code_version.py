"""The code version in a stage's cache key: a digest of every project module the stage imports.

The modules are found by reading import statements (at any depth of a module, so imports inside
functions count) from the stage's module onwards, transitively, within the project's packages.
Nothing is imported, not even a parent package: modules are located on disk, so a cache lookup
does not pay for the libraries those modules use.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path

from pipeline_core.fingerprint import digest

PROJECT_PACKAGES = ("pipeline_core", "pipeline_io", "tasks")
# An import statement at any indentation; parenthesised names may run over several lines.
# An import after a colon on the same line (`try: import x`) is not at a line's start: such modules are parsed whole.
IMPORT_AFTER_COLON = re.compile(r":[ \t]*(?:import|from)[ \t]")
IMPORT_STATEMENT = re.compile(r"^[ \t]*(?:from[ \t]+[\w.]+[ \t]+import[ \t]+(?:\([^)]*\)|[^\n]*)|import[ \t]+[^\n]*)", re.MULTILINE)


@cache
def _package_root(package: str) -> Path | None:
    """The directory of a top-level project package (finding a top-level package imports nothing)."""
    spec = importlib.util.find_spec(package)
    return Path(spec.origin).parent if spec is not None and spec.origin else None


def _path(module: str) -> Path | None:
    """The source file of a project module, or None when there is none."""
    top, _, rest = module.partition(".")
    root = _package_root(top) if top in PROJECT_PACKAGES else None
    if root is None:
        return None
    base = root.joinpath(*rest.split(".")) if rest else root
    for candidate in (base / "__init__.py", base.with_suffix(".py")) if rest else (base / "__init__.py",):
        if candidate.is_file():
            return candidate
    return None


def _source(module: str) -> str | None:
    path = _path(module)
    return path.read_text(encoding="utf-8") if path else None


def _is_project(name: str) -> bool:
    return name.split(".", 1)[0] in PROJECT_PACKAGES


def _package(module: str) -> str:
    path = _path(module)
    return module if path is not None and path.name == "__init__.py" else module.rpartition(".")[0]


@cache
def imported_modules(module: str, source: str) -> frozenset[str]:
    """Project modules named by the import statements of ``source`` (the text of ``module``)."""
    package = _package(module)
    found: set[str] = set()
    for node in _import_nodes(source):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if _is_project(a.name))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            if not _is_project(base):
                continue
            found.add(base)
            for alias in node.names:  # `from pkg import module` names a module too
                candidate = f"{base}.{alias.name}"
                if _path(candidate) is not None:
                    found.add(candidate)
    # importing a.b.c runs a/__init__ and a/b/__init__ first
    parents = {name.rsplit(".", i)[0] for name in found for i in range(1, name.count(".") + 1)}
    return frozenset(found | parents)


def _import_nodes(source: str) -> list[ast.stmt]:
    """The import statements of a module, at any depth (imports inside functions count too).

    Only the lines that look like imports are parsed, a fraction of the cost of parsing the module;
    when they do not parse on their own (a continued line, an import-like line in a string) the
    whole module is parsed. A line in a string that does parse can only add a module to the key.
    """
    try:
        if not IMPORT_AFTER_COLON.search(source):
            return ast.parse("\n".join(m.group(0).strip() for m in IMPORT_STATEMENT.finditer(source))).body
    except SyntaxError:
        pass
    return [n for n in ast.walk(ast.parse(source)) if isinstance(n, (ast.Import, ast.ImportFrom))]


def module_closure(entry: str, read: Callable[[str], str | None] = _source) -> dict[str, str]:
    """{module: source} of ``entry`` and every project module it imports, transitively."""
    sources: dict[str, str] = {}
    pending = [entry]
    while pending:
        name = pending.pop()
        if name in sources:
            continue
        text = read(name)
        if text is None:
            continue
        sources[name] = text
        pending.extend(imported_modules(name, text) - sources.keys())
    return sources


def code_version(entry: str, read: Callable[[str], str | None] = _source) -> str:
    """Digest of the sources of ``entry``'s module closure: any change to any of them changes it."""
    if read is _source:
        return _cached_version(entry)
    closure = module_closure(entry, read)
    return digest(*[f"{name}\n{closure[name]}" for name in sorted(closure)])[:16]


@cache
def _cached_version(entry: str) -> str:
    """Sources do not change while a process runs (an editable install reloads nothing either)."""
    return code_version(entry, read=lambda name: _source(name))
