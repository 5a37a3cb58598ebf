"""CLI command implementations (thin layers over the API)."""
