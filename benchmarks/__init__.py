"""Benchmark suite of the reputation engine: ``python -m benchmarks quick|full`` (see ``__main__``)."""
