"""Benchmarks that print their figures (`creditplus bench ...`)."""
