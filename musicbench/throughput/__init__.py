"""Throughput benchmarks: run the pytest-benchmark suites of ``bench/``, describe the hardware."""
