"""Files under the store's home: content-addressed images (``images/<sha256>.png``) and inputs.

A file is written to a ``.partial`` temporary name beside its final one, fsynced and renamed,
so it is there whole or not at all; the folder is fsynced after. A ``.partial`` file's name holds
its writer's machine and process, so leftovers of a killed writer can be told from a live one's.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import struct
import tempfile
import time
from pathlib import Path

from promptlab.errors import StoreError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Image files of a batch written at once (their fsyncs overlap).
MAX_PARALLEL_WRITES = 16

# A ``.partial`` image file whose writer cannot be told alive (another machine, an older name) is
# left this long: every write finishes within seconds, so one this old was abandoned.
PARTIAL_MAX_AGE_S = 600.0

# An input image's extension: a dot and a few letters or digits, never a path.
INPUT_SUFFIX = re.compile(r"\.[a-z0-9]{1,8}")


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # alive, someone else's
    return True


def writer_tag() -> str:
    """This process as part of a temporary file's name: a hash of the host name, and the pid."""
    host = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
    return f"{host}-{os.getpid()}"


def abandoned(path: Path) -> bool:
    """Whether a ``.partial`` file's writer is gone: its process, on this machine, is dead; or it is old."""
    parts = path.name.split(".")
    tag = parts[2] if len(parts) == 5 else ""
    host, _, pid = tag.partition("-")
    if pid.isdigit() and host == writer_tag().partition("-")[0]:
        return int(pid) != os.getpid() and not process_alive(int(pid))
    return time.time() - path.stat().st_mtime > PARTIAL_MAX_AGE_S


def file_problem(path: Path, sha256: str) -> str | None:
    """``missing`` if the file is not there, ``changed`` if its bytes do not hash to ``sha256``, else None."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError:
        return "missing"
    except OSError:
        return "missing"  # unreadable is as good as gone for every reader
    return None if digest.hexdigest() == sha256 else "changed"


def png_size(data: bytes, what: str) -> tuple[int, int]:
    """Width and height from a PNG's header (its first chunk, IHDR); StoreError naming ``what`` if it is not a PNG."""
    if not data.startswith(PNG_SIGNATURE):
        raise StoreError(f"{what}: the image bytes are not a PNG file")
    header = data[len(PNG_SIGNATURE) : len(PNG_SIGNATURE) + 16]
    if len(header) < 16 or header[4:8] != b"IHDR":
        raise StoreError(f"{what}: the image bytes are not a readable PNG: no IHDR chunk after the signature")
    width, height = struct.unpack(">II", header[8:16])
    if not width or not height:
        raise StoreError(f"{what}: the image bytes are not a readable PNG: its header says {width}x{height} pixels")
    return width, height


def write_file_atomically(path: Path, data: bytes, what: str) -> None:
    """Write ``data`` to ``path`` whole or not at all: a ``.partial`` temp file beside it, fsync, rename."""
    try:
        # The writer's machine and process in the name, so clean_partials knows a dead writer's file.
        fd, temp = tempfile.mkstemp(prefix=f".{path.name.split('.')[0]}.{writer_tag()}.", suffix=".partial", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise StoreError(f"cannot write {what} {path}: {exc}") from exc


def fsync_dir(folder: Path) -> None:
    """Make a rename durable (POSIX); Windows cannot open a folder and needs nothing."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

