"""What the user asked to watch: the roots, and whether a path falls under them.

The watcher asks this for every event (is this new file one of ours?), so
the answers cost string work and at most one system call, never a walk.
Discovery's rules hold here too: below a folder root, a log name
(``discover.is_log_path``) not inside a hidden folder; a file root always.
"""

from __future__ import annotations

import os
from pathlib import Path

from trainwatch.ingest.discover import is_log_path


class Roots:
    """The local roots the user named: folders (watched recursively) and files."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = [Path(os.path.abspath(p)) for p in paths]
        self.dirs = {str(r) for r in self.paths if not r.is_file()}
        self.files = {str(r) for r in self.paths if r.is_file()}
        self._real = {r: os.path.realpath(r) for r in self.dirs}
        #: Roots that are symlinks (``latest -> run2``), and what each points at now.
        self.links = {str(r): os.path.realpath(r) for r in self.paths if os.path.islink(r)}
        self._real_files = {r: os.path.realpath(r) for r in self.files}

    def accepts(self, path: str) -> bool:
        """Is ``path`` a log file the user asked to watch (discover's rules)?"""
        return path in self.files or (is_log_path(path) and self.in_tree(os.path.dirname(path)))

    def in_tree(self, folder: str) -> bool:
        """Is ``folder`` inside a watched root, and not below a hidden folder?"""
        while folder not in self.dirs:
            parent, part = os.path.split(folder)
            if parent == folder or part.startswith(".") or part == "__pycache__":
                return False
            folder = parent
        return True

    def relinked(self) -> list[str]:
        """The roots that resolve elsewhere than when last asked (a symlink on
        the way repointed: ``ln -sfn run2 latest``): what they hold is
        another run. One ``realpath`` a root: the roots are few."""
        moved = []
        for known in (self._real, self._real_files):
            for root, real in known.items():
                now = os.path.realpath(root)
                if now != real:
                    known[root] = now
                    if root in self.links:
                        self.links[root] = now
                    moved.append(root)
        return moved

    def covered(self, folder: str) -> bool:
        """Is ``folder`` a folder root or below one (already watched recursively)?"""
        return any(folder == r or folder.startswith(r + os.sep) for r in self.dirs)

    def real(self, path: str) -> str:
        """``os.path.realpath`` in one system call for a plain file under a root.

        Below a root only the file itself can be a symlink: neither discover
        nor the observers follow symlinked folders.
        """
        if not os.path.islink(path):
            for root, real_root in self._real.items():
                if path.startswith(root + os.sep):
                    return real_root + path[len(root) :]
        return os.path.realpath(path)
