"""The Python layer's imports run one way (DESIGN.md):

    _kernels, _random, io  <-  functional  <-  nn  <-  optim  <-  distributed  <-  callbacks
        <-  training, checkpoint  <-  sklearn (the estimators drive training)
    and nn  <-  onnx (export reads layers, never trains; optim and above never import it)

No module imports a layer above its own, not even lazily inside a function. Modules
outside the chain (image, datasets, testing, _config) sit where their imports put them.
"""
import ast
import pathlib

import pytest

import neuropil

# the package that is imported (the source tree, or an installed wheel in CI)
PKG = pathlib.Path(neuropil.__file__).resolve().parent

# rank of each top-level part of the package; an import must not go to a higher rank
RANK = {
    "_kernels": 0, "_random": 0, "io": 0,
    "functional": 1, "_config": 1, "image": 2, "datasets": 0,
    "nn": 2, "testing": 2,
    "optim": 3,
    "distributed": 4,
    "callbacks": 5,
    "training": 6, "checkpoint": 6,
    "onnx": 2.5,      # above nn, below optim: export reads layers, never trains
    "sklearn": 7,     # the estimators drive training
}


def _part(path: pathlib.Path) -> str:
    rel = path.relative_to(PKG).with_suffix("")
    return rel.parts[0]


def _imported_parts(source: str, rel: pathlib.PurePath):
    """Top-level neuropil parts imported anywhere in ``source`` (any nesting depth), for a
    module at ``rel`` inside the package."""
    tree = ast.parse(source, str(rel))
    pkg_parts = list(rel.parts[:-1])  # package of this module, relative to neuropil
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                mod = node.module or ""
                if not mod.startswith("neuropil"):
                    continue
                parts = mod.split(".")[1:]
            else:
                base = pkg_parts[: len(pkg_parts) - (node.level - 1)] if node.level > 1 else pkg_parts
                if node.level - 1 > len(pkg_parts):
                    continue
                parts = base + (node.module.split(".") if node.module else [])
            if parts:
                yield node.lineno, parts[0]
            else:  # "from . import x, y" at the package root
                for alias in node.names:
                    yield node.lineno, alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("neuropil."):
                    yield node.lineno, alias.name.split(".")[1]


FILES = sorted(p for p in PKG.rglob("*.py") if p.name != "__init__.py" or p.parent != PKG)


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(PKG)) for p in FILES])
def test_imports_only_go_down(path):
    part = _part(path)
    if part not in RANK:
        pytest.fail(f"{path.relative_to(PKG)}: add its part {part!r} to RANK in this test")
    for line, target in _imported_parts(path.read_text(), path.relative_to(PKG)):
        assert target in RANK, f"{path.relative_to(PKG)}:{line} imports unknown part {target!r}"
        assert RANK[target] <= RANK[part], (
            f"{path.relative_to(PKG)}:{line} imports neuropil.{target} (rank {RANK[target]}) "
            f"from {part} (rank {RANK[part]}): imports must go down the layers")


def test_the_rule_catches_an_upward_import():
    """The checker itself: a lazy import of training inside an nn function is found."""
    src = "def f():\n    from ..training import fit\n    from .. import optim\n    return fit\n"
    found = list(_imported_parts(src, pathlib.PurePath("nn", "probe.py")))
    assert found == [(2, "training"), (3, "optim")]
    assert RANK["training"] > RANK["nn"] and RANK["optim"] > RANK["nn"]


def test_fit_is_still_a_method():
    import neuropil
    from neuropil import nn
    m = nn.Sequential(nn.Linear(2, 1))
    assert callable(m.fit) and callable(m.evaluate) and callable(m.predict)
    assert neuropil.training.fit is nn.module._LOOPS["fit"]
