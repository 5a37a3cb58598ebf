"""Solver-neutral encodings of networks and properties (no solver imports here)."""
