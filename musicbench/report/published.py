"""The literature beside the measured rows: published figures of a task (its spec's
``[[reference]]``) and the known faults of a protocol on it (``protocol_warnings``).

A figure is comparable with a leaderboard table only where it was measured under the
table's protocol on the table's version of the task, with the task's own settings; it is
then printed as a marked row of that table and never enters its significance tests. The
figures of other protocols are counted beside the table, never shown as comparable.
"""

from __future__ import annotations

import pandas as pd

from musicbench.errors import MusicbenchError
from musicbench.protocol.splits import known_fault
from musicbench.report.tables import iter_tables
from musicbench.tasks.spec import TaskSpec, get_spec

COLUMNS = ["task", "version", "protocol", "split_hash", "system", "metric", "value", "source", "note",
           "figure_protocol", "comparable"]


def _spec(task: str) -> TaskSpec | None:
    """The spec of a task as recorded; None where it is not registered here, or where the
    task reference changed its settings (``NAME+KEY=VALUE``: another task than the papers')."""
    if "+" in task:
        return None
    try:
        return get_spec(task)
    except MusicbenchError:
        return None


def published(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (leaderboard table, published figure of its task); ``comparable`` where
    the figure's protocol and version are the table's."""
    rows = []
    for tkey, _ in iter_tables(results):
        spec = _spec(tkey["task"])
        for fig in spec.reference if spec else ():
            rows.append({**tkey, "system": fig.system, "metric": fig.metric, "value": fig.value,
                         "source": fig.source, "note": fig.note, "figure_protocol": fig.protocol,
                         "comparable": fig.protocol == tkey["protocol"] and tkey["version"] == spec.version})
    return pd.DataFrame(rows, columns=COLUMNS)


def protocol_faults(results: pd.DataFrame) -> pd.DataFrame:
    """One row per leaderboard table whose protocol the task's spec warns about."""
    rows = []
    for tkey, _ in iter_tables(results):
        spec = _spec(tkey["task"])
        try:
            fault = known_fault(spec, tkey["protocol"]) if spec else None
        except MusicbenchError:  # a protocol name this version of the package no longer parses
            fault = None
        if fault:
            rows.append({**tkey, "warning": fault})
    return pd.DataFrame(rows, columns=["task", "version", "protocol", "split_hash", "warning"])
