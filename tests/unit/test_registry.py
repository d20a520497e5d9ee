"""The generic registry: lazy entries, registration, lookups, entries from higher layers."""

from __future__ import annotations

import sys

import pytest

from musicbench.errors import ConfigError, UnknownNameError
from musicbench.registry import REGISTRIES, Registry, extend


@pytest.fixture
def kind(request):
    """A registry kind of this test only, removed afterwards."""
    name = f"test thing {request.node.name}"
    yield name
    REGISTRIES.pop(name, None)


@pytest.fixture
def lazy_module(tmp_path, monkeypatch):
    """A module that records being imported: ``lazy_target.IMPORTED``."""
    (tmp_path / "lazy_target.py").write_text("IMPORTED = True\nclass Thing:\n    '''A thing.'''\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("lazy_target", None)
    yield "lazy_target"
    sys.modules.pop("lazy_target", None)


def test_lazy_entries_import_on_first_lookup_only(kind, lazy_module):
    reg = Registry(kind, {"thing": f"{lazy_module}:Thing"})
    assert "thing" in reg and reg.names() == ["thing"] and len(reg) == 1
    assert reg.source("thing") == f"{lazy_module}:Thing"
    assert lazy_module not in sys.modules  # naming, counting and locating import nothing
    thing = reg["thing"]
    assert thing.__name__ == "Thing" and sys.modules[lazy_module].IMPORTED
    assert reg["thing"] is thing and reg.source("thing") == f"{lazy_module}:Thing"
    assert reg.summary("thing") == "A thing."


def test_unknown_names_list_the_valid_ones(kind):
    reg = Registry(kind, {"b": 2, "a": 1})
    with pytest.raises(UnknownNameError, match=f"unknown {kind} 'c'; valid .*: a, b$"):
        reg["c"]
    with pytest.raises(UnknownNameError):
        reg.source("c")
    assert reg.get("c") is None and reg.get("a") == 1 and sorted(reg) == ["a", "b"]


def test_register_and_decorator_refuse_a_name_twice(kind):
    reg = Registry(kind)

    @reg.register("double")
    def double(x):
        return 2 * x

    assert reg["double"](3) == 6 and reg.source("double").endswith(":test_register_and_decorator_"
                                                                   "refuse_a_name_twice.<locals>.double")
    with pytest.raises(ConfigError, match="registered twice"):
        reg.register("double", len)
    with pytest.raises(ConfigError, match="already exists"):
        Registry(kind)


def test_extend_before_and_after_the_registry_exists(kind, lazy_module):
    extend(kind, {"early": f"{lazy_module}:Thing"})
    reg = Registry(kind, {"own": 1})
    extend(kind, {"late": f"{lazy_module}:IMPORTED"})
    assert reg.names() == ["early", "late", "own"]
    assert reg["late"] is True and reg["early"].__name__ == "Thing"
