"""Every registry and every entry of it: found by ``musicbench list``, importable, described,
and refusing unknown names with the valid ones. A new registry or entry is covered here
with no new test code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import musicbench
from musicbench.cli import main
from musicbench.errors import UnknownNameError, plural
from musicbench.extensions import all_registries

REGISTRIES = all_registries()
ENTRIES = [(kind, name) for kind, reg in REGISTRIES.items() for name in reg.names()]


def test_every_registry_of_the_package_is_held_where_list_finds_it():
    """Each ``Registry("kind", ...)`` created in the package's source is one of
    ``all_registries()``: a registry missing from ``extensions.HOLDERS`` fails here."""
    created = set()
    for path in Path(musicbench.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Registry"
                    and node.args and isinstance(node.args[0], ast.Constant)):
                created.add(node.args[0].value)
    assert created == set(REGISTRIES)
    assert len(created) >= 10


@pytest.mark.parametrize(("kind", "name"), ENTRIES, ids=[f"{k}:{n}" for k, n in ENTRIES])
def test_entry_resolves_and_says_what_it_is(kind, name):
    reg = REGISTRIES[kind]
    entry = reg[name]
    assert entry is not None and reg[name] is entry
    assert reg.summary(name), f"{kind} {name!r} has no description"
    module = reg.source(name).partition(":")[0]
    assert module.startswith("musicbench"), reg.source(name)


@pytest.mark.parametrize("kind", sorted(REGISTRIES))
def test_unknown_name_lists_every_valid_one(kind):
    reg = REGISTRIES[kind]
    with pytest.raises(UnknownNameError) as err:
        reg["no-such-entry"]
    assert err.value.valid == reg.names() and plural(kind) in str(err.value)


@pytest.mark.parametrize("kind", sorted(REGISTRIES))
def test_list_shows_the_registry(kind, capsys):
    assert main(["list", plural(kind).replace(" ", "-")]) == 0
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in REGISTRIES[kind].names()), out


def test_list_refuses_an_unknown_kind(capsys):
    assert main(["list", "gizmos"]) == 2
    err = capsys.readouterr().err
    assert "gizmos" in err and "metrics" in err and "systems" in err
