"""Where promptlab keeps its files, from the environment.

- ``PROMPTLAB_HOME``: the database and images (default ``./.promptlab``).
- ``PROMPTLAB_DB``: a SQLAlchemy URL that overrides the SQLite file under home.
- ``PROMPTLAB_CACHE``: built-in tiny models and other rebuildable files
  (default ``~/.cache/promptlab``).
- ``PROMPTLAB_VOCAB``: a user's vocabulary folder that adds to and overrides the bundled one.
"""

from __future__ import annotations

import os
from pathlib import Path


def home_dir() -> Path:
    """The folder holding the default SQLite database and the images."""
    return Path(os.environ.get("PROMPTLAB_HOME") or ".promptlab").expanduser()


def cache_dir() -> Path:
    """The folder for rebuildable files (built-in tiny models)."""
    default = Path.home() / ".cache" / "promptlab"
    return Path(os.environ.get("PROMPTLAB_CACHE") or default).expanduser()


def images_dir() -> Path:
    """Content-addressed PNG files: ``images/<sha256>.png``."""
    return home_dir() / "images"


def database_url() -> str:
    """``PROMPTLAB_DB`` if set, else a SQLite file under home."""
    url = os.environ.get("PROMPTLAB_DB")
    if url:
        return url
    return f"sqlite:///{(home_dir() / 'promptlab.db').resolve()}"
