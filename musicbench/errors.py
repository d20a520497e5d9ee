"""Errors that carry an actionable message for the command line."""

from __future__ import annotations

from collections.abc import Iterable


class MusicbenchError(Exception):
    """Base class: the message says what was wrong and what to do about it."""


def plural(kind: str) -> str:
    """'version of gtzan_genre' -> 'versions of gtzan_genre'; 'system family' -> 'system families'."""
    for sep in (" of ", " in "):
        head, found, tail = kind.partition(sep)
        if found:
            return plural(head) + found + tail
    return kind[:-1] + "ies" if kind.endswith("y") else kind + "s"


class UnknownNameError(MusicbenchError, KeyError):
    """A task, system, suite, protocol or parameter name that is not registered."""

    def __init__(self, kind: str, name: str, valid: Iterable[str]):
        self.kind, self.name, self.valid = kind, name, sorted(valid)
        super().__init__(
            f"unknown {kind} {name!r}; valid {plural(kind)}: {', '.join(self.valid) or '(none)'}"
        )

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class ConfigError(MusicbenchError, ValueError):
    """A preset, suite, protocol string or option value that cannot be used."""


class DataError(MusicbenchError):
    """Dataset index or audio files missing, partial or unreadable."""


class DataAbsent(DataError):
    """A task's data is not on this machine at all (no index, no track on disk, no folder):
    a suite with ``skip_absent`` skips the task with this reason instead of refusing."""


class AudioError(DataError):
    """One track's audio cannot be used; names the track and the file."""

    def __init__(self, track_id: str, path: str, problem: str, hint: str):
        self.track_id, self.path = track_id, path
        super().__init__(f"track {track_id!r} ({path}): {problem}. {hint}")
