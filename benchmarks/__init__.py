"""Benchmarks: ``make bench`` (``python -m benchmarks``); results in docs/BENCHMARKS.md."""
