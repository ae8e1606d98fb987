"""Load and resource benchmarks of the whole stack (``python -m bench.run --help``)."""
