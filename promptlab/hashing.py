"""SHA-256 of weight files, which runs and scores record to name the exact weights they used.

A checkpoint is gigabytes, so each file is hashed once per process per (path, size, mtime);
the memo is bounded, since a long session may look at many files.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from pathlib import Path

#: Hashes remembered per process (least recently used go first).
HASH_MEMO_SIZE = 1024
_HASHES: OrderedDict[tuple[str, int, int], str] = OrderedDict()
_LOCK = threading.Lock()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, computed once per process per (path, size, mtime)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _LOCK:
        if key in _HASHES:
            _HASHES.move_to_end(key)
            return _HASHES[key]
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    with _LOCK:
        _HASHES[key] = digest.hexdigest()
        while len(_HASHES) > HASH_MEMO_SIZE:
            _HASHES.popitem(last=False)
    return digest.hexdigest()
