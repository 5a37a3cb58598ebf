"""Running hybridver on a Ray cluster (the optional ``[ray]`` extra).

Nothing outside this package imports Ray, and nothing imports this package unless a run
asks for a cluster (``--cluster ADDRESS|auto``, ``cluster =`` in the config file): the
modules here are imported inside the functions that need them.

* :mod:`~hybridver.cluster.connect`: connecting to a cluster, clear errors when it cannot.
* :mod:`~hybridver.cluster.executor`: the scheduler's :class:`Executor` on Ray tasks.
* :mod:`~hybridver.cluster.farm`: campaigns, one Ray task per instance.
* :mod:`~hybridver.cluster.tasks`: Ray tasks that report their start; the head's watch.
* :mod:`~hybridver.cluster.shard`: one shard of a distributed branch-and-bound (plain
  Python, no Ray: a Ray actor wraps it).
* :mod:`~hybridver.cluster.bab`: the coordinator of a distributed branch-and-bound:
  sharded domain pool, work stealing, the ledger of open domains, worker faults.
"""
