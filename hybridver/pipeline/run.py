"""The entry of the pipeline: the stages of a config's schedule, run on one context."""

from __future__ import annotations

from hybridver.config import StageName, VerifyConfig
from hybridver.pipeline.activation_split import ActivationSplitStage
from hybridver.pipeline.cluster_cases import start_shards, stop_shards
from hybridver.pipeline.context import RunContext
from hybridver.pipeline.exact import ExactStage
from hybridver.pipeline.falsify import PgdStage, SamplingStage
from hybridver.pipeline.input_split import InputSplitStage
from hybridver.pipeline.stage import Stage, run_stages
from hybridver.pipeline.whole_box import WholeBoxStage
from hybridver.progress import Progress
from hybridver.result import VerificationResult

#: the stage behind each name a schedule may use
STAGES: dict[StageName, type] = {
    StageName.SAMPLING: SamplingStage,
    StageName.WHOLE_BOX: WholeBoxStage,
    StageName.PGD: PgdStage,
    StageName.INPUT_SPLIT: InputSplitStage,
    StageName.ACTIVATION_SPLIT: ActivationSplitStage,
    StageName.EXACT: ExactStage,
}


def build_stages(config: VerifyConfig) -> list[Stage]:
    """The stages of ``config`` (its schedule's, or exact mode's one stage), in order."""
    return [STAGES[StageName(name)]() for name in config.stages]


def run_pipeline(model, spec, config: VerifyConfig, progress: Progress | None = None,
                 deadline: float | None = None, start: float | None = None
                 ) -> VerificationResult:
    """Decide ``spec`` on ``model`` (a :class:`hybridver.api.LoadedModel`) with the
    stages of ``config``; ``deadline``: the run's absolute ``time.monotonic()`` limit
    (default: ``config.timeout_s`` from now); ``start``: when the run started, for its
    reported time."""
    ctx = RunContext(model, spec, config, progress, deadline=deadline, start=start)
    stages = build_stages(config)
    shards = any(isinstance(stage, (InputSplitStage, ActivationSplitStage)) for stage in stages)
    if shards:
        start_shards(ctx)   # no-ops without a cluster
    try:
        return run_stages(ctx, stages)
    finally:
        if shards:
            stop_shards(ctx)
