"""Benchmarks for Podium (see README.md)."""
