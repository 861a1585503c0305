"""Snapshots out to the world: the JSON contract (``contract``), table, md,
csv, json and html exports (``export``) and the Prometheus endpoint
(``prometheus``). They read the immutable ``core.rows.Snapshot`` and nothing
upstream of it.
"""
