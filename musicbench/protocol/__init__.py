"""The evaluation protocol: folds with split hashes and leakage checks, and the metrics."""
