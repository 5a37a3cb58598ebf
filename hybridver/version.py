"""The package version (a leaf: the CLI reports it without importing the API)."""

__version__ = "0.1.0"
