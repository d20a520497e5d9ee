"""Imports run one way: a module may import its own layer and the layers below it, never
one above (function-level imports included, and the lazy ``"module:attr"`` references of
registries, which import when looked up). A new top-level module or subpackage must be
given a layer here."""

from __future__ import annotations

import ast
from pathlib import Path

import musicbench
from musicbench.registry import is_reference

LAYERS = [
    {"errors", "runtime", "presets", "flags", "registry"},
    {"audio", "augment"},
    {"tasks"},
    {"protocol", "features", "encoders"},
    {"systems"},
    {"results"},
    {"runner", "tuning", "throughput", "pretrain"},
    {"report"},
    {"gate"},
    {"cli", "__main__", "hear", "extensions"},
]
ROOT = Path(musicbench.__file__).resolve().parent


def _unit(module: str) -> str | None:
    """The top-level unit of ``musicbench.x.y`` (x), None for the package itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _layer(unit: str) -> int:
    for i, names in enumerate(LAYERS):
        if unit in names:
            return i
    raise AssertionError(f"musicbench.{unit} has no layer in tests/test_layers.py")


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "musicbench":
            if node.module == "musicbench":  # from musicbench import flags
                yield from (f"musicbench.{a.name}" for a in node.names)
            else:
                yield node.module
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("musicbench."))
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str) and is_reference(node.value)
              and node.value.startswith("musicbench.")):
            yield node.value.partition(":")[0]


def test_no_module_imports_a_higher_layer():
    upward = []
    for path in sorted(ROOT.rglob("*.py")):
        unit = _unit(".".join(path.relative_to(ROOT.parent).with_suffix("").parts))
        if unit is None or unit == "__init__":
            continue
        for target in _imports(path):
            other = _unit(target)
            if other and other != "__version__" and _layer(other) > _layer(unit):
                upward.append(f"{path.relative_to(ROOT.parent)} imports {target}")
    assert not upward, "imports against the layers:\n" + "\n".join(upward)


def test_registry_references_count_as_imports(tmp_path):
    """A lower layer naming a higher one's class as a lazy registry entry is caught."""
    module = tmp_path / "families.py"
    module.write_text('FAMILIES = Registry("encoder family", {\n'
                      '    "deep": "musicbench.systems.deep.encoder:DeepEncoder",\n'
                      '    "note": "not musicbench.systems:a reference",\n})\n')
    assert list(_imports(module)) == ["musicbench.systems.deep.encoder"]
