"""Where promptlab keeps its files, from the environment.

- ``PROMPTLAB_HOME``: the database and images (default ``./.promptlab``).
- ``PROMPTLAB_DB``: a SQLAlchemy URL that overrides the SQLite file under home.
- ``PROMPTLAB_CACHE``: built-in tiny models and other rebuildable files
  (default ``~/.cache/promptlab``).
- ``PROMPTLAB_VOCAB``: a user's vocabulary folder that adds to and overrides the bundled one.

And the files that ship with promptlab, found inside the installed package (never by walking
up from it): the bundled vocabulary, the example experiments and the dashboard's ``app.py``.
Their source stays at the top of the repository (``vocab/``, ``examples/``, ``app.py``);
``promptlab/_data/`` holds links to them, which the build follows, so a wheel or ``pip install .``
carries copies and an editable install reads the source itself.
"""

from __future__ import annotations

import os
from pathlib import Path

#: What the build copies into the package from the top of the source tree (see the docstring).
_DATA_DIR = Path(__file__).resolve().parent / "_data"


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


def bundled_vocab_dir() -> Path:
    """The vocabulary that ships with promptlab (``vocab/`` in the repository)."""
    return (_DATA_DIR / "vocab").resolve()


def examples_dir() -> Path:
    """The example experiment files that ship with promptlab (``examples/`` in the repository)."""
    return (_DATA_DIR / "examples").resolve()


def dashboard_app() -> Path:
    """The script ``streamlit run`` opens for the dashboard (``app.py`` in the repository)."""
    return (_DATA_DIR / "app.py").resolve()
