"""Benchmark scenarios: each prints `bench <name>: <figure> <unit> (target <t>)`."""
