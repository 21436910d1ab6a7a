"""The demo: the whole pipeline on one machine, end to end (also the benchmark's harness)."""
