"""Benchmark cases; each `run(ctx)` returns a list of `bench.timing.Result` rows."""
