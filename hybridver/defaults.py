"""The defaults a user sees, defined once.

:class:`~hybridver.config.VerifyConfig` and :class:`~hybridver.backends.options.ExactConfig`
take their defaults from here, and the command line shows them in its help.  They live in
this leaf module because the config tree imports torch (through the components' settings
classes), and ``hybridver --help`` must not.
"""

#: the run's time limit in seconds (``VerifyConfig.timeout_s``, ``--timeout``)
TIMEOUT_S = 300.0
#: how ``verify`` searches (``VerifyConfig.mode``, ``--mode``): one of :data:`MODES`
MODE = "hybrid"
#: the values of :class:`hybridver.config.Mode`
MODES = ("hybrid", "exact")
#: torch device of the bound computations (``VerifyConfig.device``, ``--device``)
DEVICE = "cpu"
#: exact back end of exact mode (``ExactConfig.backend``, ``--backend``)
EXACT_BACKEND = "highs"
#: worker processes of the hand-offs and the case race, and of the region race
#: (``Schedule.handoff_workers``, ``Schedule.region_race_workers``, ``--workers``)
HANDOFF_WORKERS = 1
REGION_RACE_WORKERS = 2
#: the scheduler's decision log in the JSON report (``VerifyConfig.decision_log``,
#: ``--decision-log``)
DECISION_LOG = False
