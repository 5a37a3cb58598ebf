"""The ``hybridver`` subcommands, one module each (verify, info, bounds, encode,
run-instances): arguments and output over :mod:`hybridver.api`, no verification logic."""
