"""Benchmark harnesses: each module exposes a click `command`."""
