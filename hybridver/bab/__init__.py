"""Search for counterexamples and (later) branch-and-bound over subdomains."""
