"""The pure core: typed records in, per-run figures out.

``records`` (what parsers emit) -> ``aggregate`` / ``aggregate_take`` (fold
them into a run's ``state``) -> ``metrics`` and ``throughput`` (derive the
figures of METRICS.md as a frozen ``stats.RunStats``, clock injected) ->
``rows`` (the immutable ``Snapshot`` of every run that the watcher
publishes). No I/O, no UI, no threads: everything here is reproducible in a
unit test. It imports nothing from ``ingest``, ``outputs``, ``system`` or ``tui``.
"""
