"""Soundness cross-checking: hidden-counterexample benchmarks and the harness that checks verifiers on them."""
