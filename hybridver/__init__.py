"""hybridver: a neural-network verifier.

The public API is what this module re-exports.  Every name is loaded on first access
(module ``__getattr__``), so ``import hybridver`` (and ``hybridver --help``) imports
neither torch nor numpy nor a solver.
"""

from hybridver.version import __version__  # noqa: E402

#: public name -> the module that defines it
_EXPORTS = {
    **dict.fromkeys(["verify", "verify_files", "verify_robust", "load_model", "load_spec",
                     "from_module", "LoadedModel"], "hybridver.api"),
    "robustness": "hybridver.properties",
    **dict.fromkeys(["compute_bounds", "BoundConfig", "for_training"], "hybridver.bounds"),
    **dict.fromkeys(["AttackConfig", "Mode", "VerifyConfig", "Schedule"], "hybridver.config"),
    "load_config": "hybridver.config_file",
    **dict.fromkeys(["ConfirmedCounterexample", "CandidateCounterexample",
                     "VerificationResult", "Verdict", "read_results_file",
                     "write_results_file"], "hybridver.result"),
}


def __getattr__(name: str):
    """Lazy access to the API so ``import hybridver`` stays light."""
    if name in _EXPORTS:
        import importlib
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hybridver' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = ["__version__", *_EXPORTS]
