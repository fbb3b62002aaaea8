"""The architecture holds: no import cycles, and the import-linter contracts of pyproject.toml are kept.

``lint-imports`` (scripts/test.sh) checks the contracts: the core imports neither Qt, pyqtgraph nor
torch, nor the GUI or the command line; the app never imports training; the layers of the rooms
inside ``nodeview.core`` and ``training``; no cycles between sibling packages. The test below also
forbids cycles between any two modules, which the contracts do not cover. Imports under
``if TYPE_CHECKING:`` (for annotations only; they never run) are left out, as in the contracts.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

grimp = pytest.importorskip("grimp")


def _cycles(graph) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    found = set()
    for importer in graph.modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            if imported != importer and graph.chain_exists(importer=imported, imported=importer):
                found.add(tuple(sorted((importer, imported))))
    return sorted(found)


def test_no_module_imports_itself_back() -> None:
    sys.path.insert(0, str(REPO))
    try:
        graph = grimp.build_graph("nodeview", "training", cache_dir=None, exclude_type_checking_imports=True)
    finally:
        sys.path.remove(str(REPO))
    assert len(graph.modules) > 50
    cycles = _cycles(graph)
    assert not cycles, "import cycles (each pair imports the other, directly or not): " + ", ".join(
        f"{a} <-> {b}" for a, b in cycles
    )


def test_a_cycle_is_found(tmp_path, monkeypatch) -> None:
    """The cycle finder is not blind: a two-module cycle in a scratch package is reported."""
    pkg = tmp_path / "cyclic"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from . import a\n")
    (pkg / "c.py").write_text("from . import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _cycles(grimp.build_graph("cyclic", cache_dir=None)) == [("cyclic.a", "cyclic.b")]


LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


@pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter not installed (dev extra)")
def test_import_contracts_are_kept() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout
