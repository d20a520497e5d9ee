"""Where preset files live: the ones shipped with the package, overridden by the workspace.

Presets are TOML files in four kinds of folder: ``datasets/`` (task specs),
``systems/`` (system presets), ``bench/suites/`` (suites) and ``encoders/`` (pretrained
encoders). The wheel carries them under ``musicbench/presets``; a source checkout keeps
them at the top level. A user's working directory (or ``$MUSICBENCH_WORKSPACE``) may hold
folders of the same names whose files add to or replace the shipped ones, file name by
file name.
"""

from __future__ import annotations

import inspect
import os
import tomllib
from pathlib import Path
from typing import Any

from musicbench.errors import ConfigError, UnknownNameError

_PACKAGE_DIR = Path(__file__).resolve().parent
# kind -> (folder inside the wheel, folder in a source checkout / workspace)
KINDS = {
    "task": ("datasets", "datasets"),
    "system": ("systems", "systems"),
    "suite": ("suites", "bench/suites"),
    "encoder": ("encoders", "encoders"),
}


def _search_dirs(kind: str) -> list[Path]:
    packaged, workspace_rel = KINDS[kind]
    dirs = [_PACKAGE_DIR / "presets" / packaged, _PACKAGE_DIR.parent / workspace_rel]
    workspace = Path(os.environ.get("MUSICBENCH_WORKSPACE", os.getcwd()))
    dirs.append(workspace / workspace_rel)
    seen, unique = set(), []
    for d in dirs:
        if d.is_dir() and d.resolve() not in seen:
            seen.add(d.resolve())
            unique.append(d)
    return unique


def preset_files(kind: str) -> dict[str, Path]:
    """Name -> file for every preset of a kind; later folders override earlier ones."""
    found: dict[str, Path] = {}
    for d in _search_dirs(kind):
        for path in sorted(d.glob("*.toml")):
            found[path.stem] = path
    return found


def load_preset(kind: str, name: str) -> dict[str, Any]:
    files = preset_files(kind)
    if name not in files:
        raise UnknownNameError(kind, name, files)
    path = files[name]
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{kind} preset {path}: invalid TOML ({exc})") from exc
    data.setdefault("name", name)
    if data["name"] != name:
        raise ConfigError(f"{kind} preset {path}: 'name' is {data['name']!r}, file says {name!r}")
    data["_path"] = str(path)
    return data


def check_keys(where: str, data: dict[str, Any], valid: list[str]) -> None:
    """Refuse keys a preset kind does not know, listing the ones it does."""
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
                          f"valid keys: {', '.join(valid)}")


def constructor_params(cls: type, exclude: tuple[str, ...] = ()) -> list[str]:
    return [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", *exclude)]


def check_param_names(params: dict[str, Any], valid: list[str], name: str, family: str) -> None:
    """Every preset or override key is a parameter of the family (else the valid ones)."""
    for key in params:
        if key not in valid:
            raise UnknownNameError(f"parameter of {name} ({family})", key, valid)
