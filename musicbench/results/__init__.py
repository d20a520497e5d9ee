"""Results: the cell record (one schema for JSON, CSV and MLflow) and the run folder's store."""

from musicbench.results.schema import SCHEMA_VERSION, CellRecord, columns
from musicbench.results.store import ResultStore

__all__ = ["SCHEMA_VERSION", "CellRecord", "ResultStore", "columns"]
