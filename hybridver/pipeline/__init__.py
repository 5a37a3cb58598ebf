"""The verification pipeline: a run context and a schedule of stages.

Owns the order of work of one verification (``run.py``), the run's state and one
deadline (``context.py``), its typed statistics (``stats.py``), the stage interface and
its driver (``stage.py``), and the stages: falsification (``falsify.py``), whole-box
bounds (``whole_box.py``), input and activation splitting (``input_split.py``,
``activation_split.py``) with what races beside them (``races.py``), and exact mode
(``exact.py``), and the self-check that re-decides an ``unsat`` with an independent back
end (``self_check.py``).  Which stages run, in which order, and when the races start is data:
:class:`hybridver.config.Schedule`.
"""

from hybridver.pipeline.run import build_stages, run_pipeline

__all__ = ["build_stages", "run_pipeline"]
