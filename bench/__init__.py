"""Benchmarks: layer suites of real networks, measured against torch, written as data and drawn as plots."""
