"""Several mirdata datasets read as one task, for protocols that train on one dataset and
test on another (GiantSteps key: trained on the GiantSteps MTG key previews of Beatport,
tested on the GiantSteps key set).

A task spec names its main ``dataset`` and ``version`` and ``join = {NAME = VERSION}``;
each track id becomes ``DATASET/ID`` and each track gets a ``source_dataset`` attribute,
which an ``[official]`` split can read (``attribute = "source_dataset"``, ``train =
["beatport_key"]``, ``test = ["giantsteps_key"]``). Each dataset keeps its own data home
(``DATA_HOME/NAME``) and index file.
"""

from __future__ import annotations

import os
from functools import cached_property
from typing import Any

SEPARATOR = "/"


class JoinedDataset:
    """The mirdata datasets of ``parts`` (name -> ``core.Dataset``) behind one dataset's
    interface: track ids, tracks, index and data home."""

    def __init__(self, parts: dict[str, Any]):
        self.parts = parts
        self.index_path = ", ".join(ds.index_path for ds in parts.values())

    @cached_property
    def data_home(self) -> str:
        """The folder every part's data home lies in (paths of ``_index`` are relative to it)."""
        return os.path.commonpath([os.path.abspath(ds.data_home) for ds in self.parts.values()])

    @cached_property
    def track_ids(self) -> list[str]:
        return [f"{name}{SEPARATOR}{t}" for name, ds in self.parts.items() for t in ds.track_ids]

    def track(self, track_id: str) -> Any:
        name, _, inner = track_id.partition(SEPARATOR)
        track = self.parts[name].track(inner)
        track.source_dataset = name
        return track

    @cached_property
    def _index(self) -> dict[str, Any]:
        """The parts' indexes under joined ids, file paths relative to ``data_home``."""
        tracks = {}
        for name, ds in self.parts.items():
            base = os.path.relpath(os.path.abspath(ds.data_home), self.data_home)
            for t, files in ds._index.get("tracks", {}).items():
                tracks[f"{name}{SEPARATOR}{t}"] = {
                    k: [os.path.normpath(os.path.join(base, v[0])) if v and v[0] else None, *v[1:]]
                    for k, v in files.items()}
        return {"version": "joined", "tracks": tracks}
