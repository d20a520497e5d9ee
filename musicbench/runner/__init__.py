"""The runner: suites expanded into cells, cells run, results stored and logged."""
