"""Exceptions: bad input (the CLI turns each into one readable line and exit code 2), and
the deadline of a run passing inside a computation (:class:`DeadlineExceeded`)."""

from __future__ import annotations


class HybridverInputError(Exception):
    """The user's input (model, spec, file, option) is wrong or unsupported."""


class ModelLoadError(HybridverInputError):
    """A model file is missing, unreadable, truncated or malformed."""


class UnsupportedOpError(ModelLoadError):
    """The model uses operators the importer does not cover.

    ``unsupported`` lists ``(op_type, node_name)`` for every offending node, so the user
    sees all of them at once instead of fixing one per run.
    """

    def __init__(self, unsupported: list[tuple[str, str]], model: str = "",
                 kind: str = "ONNX operator"):
        self.unsupported = list(unsupported)
        where = f" in {model}" if model else ""
        listed = ", ".join(f"{op} (node '{node}')" for op, node in self.unsupported)
        super().__init__(f"unsupported {kind}(s){where}: {listed}")


class SpecError(HybridverInputError):
    """A property file is malformed; ``line``/``column`` are 1-based when known."""

    def __init__(self, message: str, path: str = "", line: int | None = None,
                 column: int | None = None):
        self.path, self.line, self.column = path, line, column
        where = path or "<spec>"
        if line is not None:
            where += f":{line}" + (f":{column}" if column is not None else "")
        super().__init__(f"{where}: {message}")


class DimensionMismatchError(HybridverInputError):
    """The spec's variables do not match the model's input or output size."""


class SolverUnavailableError(HybridverInputError):
    """A requested back end's solver package is not installed or cannot be loaded."""


class ClusterError(HybridverInputError):
    """The Ray cluster cannot be used: the ``[ray]`` extra is missing, the address cannot
    be reached, or the head node was lost during a run.  A run that meets it ends with
    this error, never with a verdict (the CLI: one line, exit code 2)."""


class DeadlineExceeded(Exception):
    """A computation passed the run's deadline (a ``time.monotonic()`` value) and stopped;
    the run answers ``timeout``.  Not bad input: raised inside bound passes
    (:class:`hybridver.bounds.options.BoundConfig` ``deadline``) and searches, caught by the
    pipeline.  No bound is claimed from a stopped pass.
    """


class VacuousSpecWarning(UserWarning):
    """A spec that says nothing useful: every input region is empty (it holds vacuously),
    or a case has no output constraint (every point of its region is a counterexample).
    The CLI prints it as one line, and refuses the spec under ``--strict``."""
