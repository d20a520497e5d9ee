"""musicbench: one evaluation protocol for music classification systems on mirdata tasks."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("musicbench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

import musicbench.extensions  # noqa: E402,F401 - higher layers' entries in lower registries
