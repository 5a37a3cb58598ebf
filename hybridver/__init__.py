"""hybridver: a neural-network verifier.

The public API is what this module re-exports; heavy dependencies and solvers are imported
only when used.
"""

from hybridver.version import __version__  # noqa: E402

from hybridver.result import (ConfirmedCounterexample, CandidateCounterexample,  # noqa: E402
                              VerificationResult, Verdict, read_results_file,
                              write_results_file)


def __getattr__(name: str):
    """Lazy access to the API so ``import hybridver`` stays light."""
    if name in {"verify", "verify_files", "load_model", "load_spec", "from_module",
                "LoadedModel"}:
        from hybridver import api
        return getattr(api, name)
    if name in {"AttackConfig", "Mode", "VerifyConfig", "Schedule"}:
        from hybridver import config
        return getattr(config, name)
    if name == "load_config":
        from hybridver import config_file
        return config_file.load_config
    raise AttributeError(f"module 'hybridver' has no attribute {name!r}")


__all__ = ["AttackConfig", "Mode", "VerifyConfig", "Verdict", "VerificationResult",
           "ConfirmedCounterexample", "CandidateCounterexample", "read_results_file",
           "write_results_file", "verify", "verify_files", "load_model", "load_spec",
           "from_module", "LoadedModel", "Schedule", "load_config"]
