"""Files and hosts in, records and published snapshots out.

``discover`` finds candidate logs; ``source.LogSource`` keeps one file's tail
state (``documents`` for logs rewritten whole) and feeds its bytes to the
file's parser and its run's aggregator; ``watcher.Watcher`` schedules the
reads from filesystem events (``watches``: inotify or polling, ``mounts``:
which roots are network filesystems, ``statpoll``: stat sweeps when many logs
are busy), tells rotated copies from new runs (``rotation``) and hands
immutable snapshots to its consumer (``publish``). ``remote`` and ``sshtail``
read ``host:/path`` roots over ssh. Only ``watches`` and ``watcher`` touch
watchdog. Files are opened read-only and never written.
"""
