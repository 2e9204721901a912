"""The floor plan of docs/architecture.md, read from the import statements: the training
package loads no model family, inference loads no training code."""

import ast
import glob
import os

import pytest

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tfaudio")


def _module(path: str) -> str:
    rel = os.path.relpath(path, os.path.dirname(ROOT))[:-len(".py")].replace(os.sep, ".")
    return rel[:-len(".__init__")] if rel.endswith(".__init__") else rel


MODULES = {_module(p): p for p in glob.glob(os.path.join(ROOT, "**", "*.py"), recursive=True)}


def imports(module: str) -> set:
    """The tfaudio modules `module` imports, at any depth of its code (lazy imports too)."""
    found = set()
    for node in ast.walk(ast.parse(open(MODULES[module], encoding="utf-8").read())):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                 [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                 if isinstance(node, ast.ImportFrom) and node.module else [])
        found.update(n for n in names if n in MODULES)
    return found


def closure(module: str) -> set:
    """Every tfaudio module loaded by importing `module` (packages' __init__ included)."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(2, len(parts)) if ".".join(parts[:i]) in MODULES]
        todo += imports(name)
    return seen


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("tfaudio.training")))
def test_training_loads_no_model_family(module):
    loaded = closure(module)
    assert not loaded & {"tfaudio.experiment", "tfaudio.registry"}, sorted(loaded)
    assert not [m for m in loaded if m.startswith(("tfaudio.tasks.", "tfaudio.models."))
                and m != "tfaudio.models.weights"], sorted(loaded)


@pytest.mark.parametrize("module", ["tfaudio.synthesize", "tfaudio.separate", "tfaudio.transcribe",
                                    "tfaudio.classify", "tfaudio.export", "tfaudio.experiment"])
def test_inference_loads_no_training_code(module):
    loaded = closure(module)
    assert not [m for m in loaded if m.startswith("tfaudio.training") or m == "tfaudio.compose"], sorted(loaded)


def test_no_module_passes_400_lines():
    long = {m: n for m, p in MODULES.items() if (n := len(open(p, encoding="utf-8").readlines())) > 400}
    assert not long, f"split by role: {long}"
