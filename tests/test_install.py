"""The files that ship with promptlab: the top-level ``vocab/``, ``examples/`` and ``app.py`` stay
the source, ``promptlab/_data/`` links to them, and the build copies them into the package.

The whole install (a wheel in a fresh venv, the commands run outside the checkout) is checked by
``.ci/install_smoke.sh``, which CI runs after the tests.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

import pytest

from promptlab import paths

ROOT = Path(__file__).resolve().parent.parent
#: Local folders a build never needs.
NOT_SOURCE = (".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".hypothesis", ".pytest_cache",
              ".promptlab", "test-artifacts")  # fmt: skip
BUNDLED = {"vocab": paths.bundled_vocab_dir, "examples": paths.examples_dir, "app.py": paths.dashboard_app}


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_the_package_links_to_the_top_level_source(name: str) -> None:
    link = ROOT / "promptlab" / "_data" / name
    assert link.is_symlink(), f"{link} must stay a link to the top-level {name}, so there is one source"
    assert link.resolve() == (ROOT / name).resolve()
    assert BUNDLED[name]() == (ROOT / name).resolve()


def _source_files() -> dict[str, bytes]:
    """What the wheel must carry under promptlab/_data/, from the top-level source."""
    files = {"app.py": (ROOT / "app.py").read_bytes()}
    for folder in ("vocab", "examples"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and (folder != "vocab" or path.suffix == ".toml"):
                files[path.relative_to(ROOT).as_posix()] = path.read_bytes()
    return files


def _has_build_backend() -> bool:
    """Whether this environment has the setuptools pyproject.toml asks for (a new venv may have none)."""
    try:
        import setuptools
    except ImportError:
        return False
    return int(setuptools.__version__.split(".")[0]) >= 77


@pytest.mark.slow
def test_the_wheel_carries_the_bundled_files_and_py_typed(tmp_path: Path) -> None:
    # Built from a copy, so the checkout gets no build/ folder; links are copied as links.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(tmp_path / "dist")]
    if _has_build_backend():
        command.append("--no-build-isolation")  # this venv's setuptools: no download of the backend
    subprocess.run([*command, str(source)], check=True)
    (wheel,) = (tmp_path / "dist").glob("promptlab-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert "promptlab/py.typed" in names
        for name, data in _source_files().items():
            packaged = str(PurePosixPath("promptlab/_data") / name)
            assert packaged in names, f"the wheel lacks {packaged}"
            assert archive.read(packaged) == data, f"{packaged} differs from {name}"
