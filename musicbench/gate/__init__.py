"""Regression gates: results against a committed metric baseline, benchmarks against saved timings."""
