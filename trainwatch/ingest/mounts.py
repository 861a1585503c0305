"""Which filesystem a path sits on, from the mount table.

inotify only sees changes made through the local kernel: on NFS, Lustre,
CIFS, sshfs or GPFS a training job on another host appends unseen. The
watcher polls roots on such mounts (``network_fs``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

#: Where the mount table lives (tests point it elsewhere).
MOUNTS = Path("/proc/mounts")
NETWORK_FS = frozenset(
    {"nfs", "nfs4", "lustre", "cifs", "smb3", "smbfs", "gpfs", "beegfs", "ceph", "glusterfs", "9p", "afs", "ocfs2"}
    | {"gfs2", "panfs", "wekafs", "orangefs", "pvfs2", "davfs", "sshfs"}
)
#: ``fuse.<name>`` types that reach another host.
NETWORK_FUSE = frozenset({"sshfs", "ceph", "glusterfs", "s3fs", "gcsfuse", "rclone", "juicefs", "lustre", "davfs2"})

_OCTAL = re.compile(r"\\([0-7]{3})")


def read_mounts(path: Path | None = None) -> list[tuple[str, str]]:
    """``(mount point, fs type)`` pairs from the mount table; empty where there is none."""
    try:
        text = (path or MOUNTS).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    table = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3:  # the table escapes spaces and tabs as octal: \040
            table.append((_OCTAL.sub(lambda m: chr(int(m.group(1), 8)), fields[1]), fields[2]))
    return table


def network_fs(path: Path, table: list[tuple[str, str]]) -> str | None:
    """The network filesystem type ``path`` sits on (longest mount prefix), else ``None``."""
    target = os.path.realpath(path)
    best, fstype = "", ""
    for point, kind in table:
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):  # the later of two mounts on one point is on top
            best, fstype = point, kind
    if fstype in NETWORK_FS or (fstype.startswith("fuse.") and fstype[5:] in NETWORK_FUSE):
        return fstype
    return None
