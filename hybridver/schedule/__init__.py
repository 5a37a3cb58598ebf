"""Scheduling hard branch-and-bound subdomains onto exact back ends.

``features``: what is known about a subdomain; ``policy``: which back end and budget (or
keep branching), from features and declared capabilities only; ``learned``: the same
policy steered by a persisted model of past job timings; ``jobs`` and ``executor``:
running solves in this process (:class:`InlineExecutor`) or in killable worker processes
(:class:`LocalProcessExecutor`); ``scheduler``: the object a BaB loop calls (consider,
submit/offer, poll, portfolio races, decision log, per-back-end statistics).  It reads
only features and the back ends' declared capabilities: it imports no solver and never bab.
"""

from hybridver.schedule.executor import Executor, InlineExecutor
from hybridver.schedule.features import SubproblemFeatures
from hybridver.schedule.jobs import Job, JobHandle, JobResult, run_job
from hybridver.schedule.learned import LearnedPolicy, LearningConfig, TimingModel, load_model
from hybridver.schedule.policy import Action, Decision, Policy, PolicyConfig
from hybridver.schedule.process_pool import LocalProcessExecutor
from hybridver.schedule.scheduler import (Finished, Scheduler, SchedulerConfig, Ticket,
                                          available_capabilities)

__all__ = ["Action", "Decision", "Executor", "Finished", "InlineExecutor", "Job", "JobHandle",
           "JobResult", "LearnedPolicy", "LearningConfig", "LocalProcessExecutor", "Policy",
           "PolicyConfig", "Scheduler", "SchedulerConfig", "SubproblemFeatures", "Ticket",
           "TimingModel", "available_capabilities", "load_model", "run_job"]
