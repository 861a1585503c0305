"""The live terminal app (Textual): snapshots in, screens out.

It reads the immutable ``core.rows.Snapshot`` a watcher publishes, through a
factory the face gives it (``wiring.watcher_factory``), and never imports
the files stage. Nothing outside this package imports Textual.
"""
