"""Benchmarks: they print tables; speed goals live here, never in unit tests."""
