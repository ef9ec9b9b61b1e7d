"""What every page shares: the store opened once per database (read-only for browsing, so a
store the user may not write still opens; writable only for the pages that run), cached reads
keyed by the data's version (run count and last run time), so a finished run shows without a
manual refresh."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st
from PIL import Image

from promptlab.analysis import Analysis, PlannedCells, analyze, format_level, planned_cells
from promptlab.errors import PromptlabError
from promptlab.export import GridPlan, plan_grid
from promptlab.export.compare import ImageDifference, difference, upscaled
from promptlab.export.grid import CellScores, cell_scores, grid_levels, keep_levels
from promptlab.paths import database_url, home_dir
from promptlab.scoring import scorer_traits
from promptlab.store import SCORE_KINDS, ExperimentSummary, Store, open_store
from promptlab.vocab import Vocabulary, load_vocab

THUMBNAIL_PX = 256


@st.cache_resource(show_spinner=False)
def _store(url: str) -> Store:
    return open_store(url, read_only=True)


@st.cache_resource(show_spinner=False)
def _writable_store(url: str) -> Store:
    return open_store(url)


def store() -> Store:
    """The store of PROMPTLAB_DB / PROMPTLAB_HOME, opened read-only once per database URL."""
    return _store(database_url())


def writable_store() -> Store:
    """The same store opened for writing (running an experiment, the demo); StoreError says why it cannot be."""
    return _writable_store(database_url())


@st.cache_resource(show_spinner=False)
def vocab() -> Vocabulary:
    return load_vocab()


@st.cache_data(ttl=5, show_spinner=False)
def _experiments(url: str) -> list[ExperimentSummary]:
    return _store(url).list_experiments()


def experiments() -> list[ExperimentSummary]:
    """Every experiment with its run counts (re-read at most every 5 seconds)."""
    return _experiments(database_url())


def experiment(name: str) -> ExperimentSummary:
    return next(e for e in experiments() if e.name == name)


def version(name: str) -> str:
    """What changes when the experiment gets new runs (run count and last run time): keys cached reads."""
    # A page asks once per experiment: a copy of every summary each time made a page of N experiments cost N^2.
    known = _versions(database_url()).get(name)
    return known if known is not None else _version(experiment(name))


@st.cache_resource(ttl=5, show_spinner=False)
def _versions(url: str) -> dict[str, str]:
    # a resource, not data: shared, not copied on every call (only read, never changed); read from the
    # store, not from _experiments' copy, so that a version is never older than its 5 seconds
    return {summary.name: _version(summary) for summary in _store(url).list_experiments()}


def _version(summary: ExperimentSummary) -> str:
    return f"{summary.runs}:{summary.last_run_at}"


@st.cache_data(max_entries=32, show_spinner=False)
def _runs_frame(url: str, name: str, score_kind: str, version: str, scorer: str | None = None) -> pd.DataFrame:
    return _store(url).runs_frame(name, score_kind, scorer)


def runs_frame(name: str, score_kind: str = "intent", scorer: str | None = None) -> pd.DataFrame:
    """``Store.runs_frame`` (by ``scorer``, default the experiment's ranking one), cached until the experiment gets new runs."""
    return _runs_frame(database_url(), name, score_kind, version(name), scorer)


@st.cache_data(max_entries=32, show_spinner=False)
def _scorers(url: str, name: str, version: str) -> list[str]:
    return _store(url).scorers(name)


def scorers(name: str) -> list[str]:
    """The experiment's scorers, the ranking one first (``Store.scorers``); cached until it gets new runs."""
    return _scorers(database_url(), name, version(name))


@st.cache_data(max_entries=32, show_spinner="Analysing...")
def _analysis(url: str, name: str, score_kind: str, version: str, with_plan: bool = False, scorer: str | None = None) -> Analysis:
    planned = _planned(url, name, version) if with_plan else None
    frame = _runs_frame(url, name, score_kind, version, scorer)
    return analyze(frame, score_kind=score_kind, experiment=name, planned=planned)


def analysis(name: str, score_kind: str = "intent", *, with_plan: bool = False, scorer: str | None = None) -> Analysis:
    """``analyze`` of the experiment's runs (by ``scorer``, default its ranking one), cached until the
    experiment gets new runs; ``with_plan`` counts its cells against those its stored file plans
    (``Analysis.cells``), which expands the file."""
    return _analysis(database_url(), name, score_kind, version(name), with_plan, scorer)


@st.cache_data(max_entries=32, show_spinner=False)
def _planned(url: str, name: str, version: str) -> PlannedCells:
    row = _store(url).get_experiment(name)
    return planned_cells(row.spec, row.source_path)


#: Levels kept per axis, as ``export.grid.keep_levels`` takes them but hashable for the cache: ((axis, (label, ...)), ...).
Keep = tuple[tuple[str, tuple[str, ...]], ...]


def _kept(url: str, name: str, score_kind: str, version: str, keep: Keep, scorer: str | None = None) -> pd.DataFrame:
    frame = _runs_frame(url, name, score_kind, version, scorer)
    return keep_levels(frame, {axis: list(labels) for axis, labels in keep}) if keep else frame


@st.cache_data(max_entries=16, show_spinner="Laying out the grid...")
def _grid_plan(
    url: str, name: str, score_kind: str, version: str, x: str, y: str, cell_px: int, keep: Keep = (), scorer: str | None = None
) -> tuple[GridPlan, int]:
    shown, lost = without_lost_images(_kept(url, name, score_kind, version, keep, scorer))
    return plan_grid(shown, x, y, cell_size=cell_px), lost


def grid_plan(
    name: str, x: str, y: str, cell_px: int, score_kind: str = "intent", keep: Keep = (), scorer: str | None = None
) -> tuple[GridPlan, int]:
    """``export.plan_grid`` of the experiment's runs, cells ``cell_px`` a side, with each run whose image
    file is gone shown as having no image; and how many those are. ``keep`` limits axes to some of
    their levels (``export.grid.keep_levels``). Cached until the experiment gets new runs, so paging
    through a big grid does not plan it again."""
    return _grid_plan(database_url(), name, score_kind, version(name), x, y, cell_px, keep, scorer)


@st.cache_data(max_entries=16, show_spinner=False)
def _cell_scores(
    url: str, name: str, score_kind: str, version: str, x: str, y: str, keep: Keep, scorer: str | None = None
) -> list[CellScores]:
    return cell_scores(_kept(url, name, score_kind, version, keep, scorer), x, y)


def grid_cell_scores(
    name: str, x: str, y: str, score_kind: str = "intent", keep: Keep = (), scorer: str | None = None
) -> list[CellScores]:
    """``export.grid.cell_scores`` of the cells ``grid_plan`` lays out: each cell's runs and its mean
    over seeds with the 95% interval; cached as ``grid_plan``."""
    return _cell_scores(database_url(), name, score_kind, version(name), x, y, keep, scorer)


@st.cache_data(max_entries=32, show_spinner=False)
def _grid_levels(url: str, name: str, version: str) -> dict[str, list[str]]:
    return grid_levels(_runs_frame(url, name, "intent", version))


def levels(name: str) -> dict[str, list[str]]:
    """Each grid axis of the experiment and its levels' labels, as the grid writes them."""
    return _grid_levels(database_url(), name, version(name))


def cell_text(cell: CellScores) -> str:
    """A cell's mean as Compare writes it: ``mean 0.31, 95% CI 0.25..0.37 over 3 seeds``, or why there is none."""
    if cell.n_seeds == 0:
        return "no score"
    if math.isnan(cell.ci_low):
        runs = len(cell.run_ids)
        return f"mean {cell.mean:.2f} of {runs} runs of 1 seed: no CI" if runs > 1 else f"{cell.mean:.2f}, 1 run: no CI"
    return f"mean {cell.mean:.2f}, {format_level(cell.ci_level)} CI {cell.ci_low:.2f}..{cell.ci_high:.2f} over {cell.n_seeds} seeds"


def _changed(path: str) -> int | None:
    """The file's modification time, which keys the image caches (a file written again is read again); None where it is gone."""
    try:
        return Path(path).stat().st_mtime_ns
    except OSError:
        return None


def enlarged(path: str) -> Image.Image | None:
    """The image at its real size, a small one enlarged with nearest-neighbour (``export.compare.upscaled``);
    None where the file is missing or unreadable."""
    changed = _changed(path)
    return None if changed is None else _enlarged(path, changed)


@st.cache_data(max_entries=64, show_spinner=False)
def _enlarged(path: str, changed: int) -> Image.Image | None:
    picture = _read(path)
    return None if picture is None else upscaled(picture)


def cell_picture(path: str, size: int = THUMBNAIL_PX) -> bytes | None:
    """A grid cell's picture as a PNG: an image smaller than ``size`` enlarged with nearest-neighbour
    (so a 64x64 image shows its pixels, not a browser's blur), a larger one a ``thumbnail``; None
    where the file is missing or unreadable."""
    changed = _changed(path)
    return None if changed is None else _cell_picture(path, changed, size)


@st.cache_data(max_entries=4096, show_spinner=False)
def _cell_picture(path: str, changed: int, size: int) -> bytes | None:
    picture = _read(path)
    if picture is None:
        return None
    if max(picture.size) < size:
        picture = upscaled(picture, size)
    else:
        picture.thumbnail((size, size))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def image_difference(path_a: str, path_b: str) -> ImageDifference | None:
    """``export.compare.difference`` of two image files, its picture enlarged as ``enlarged``; None where
    either file is missing or unreadable. ExportError where their sizes differ."""
    changed = (_changed(path_a), _changed(path_b))
    return None if None in changed else _image_difference(path_a, path_b, changed)


@st.cache_data(max_entries=64, show_spinner=False)
def _image_difference(path_a: str, path_b: str, changed: tuple[int, int]) -> ImageDifference | None:
    a, b = _read(path_a), _read(path_b)
    if a is None or b is None:
        return None
    found = difference(a, b)
    return ImageDifference(image=upscaled(found.image), gain=found.gain, mean=found.mean, max=found.max)


def _read(path: str) -> Image.Image | None:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def analyses(score_kind: str = "intent") -> list[Analysis]:
    """The analysis of every experiment that has one (two scored runs or more), each cached as ``analysis``."""
    found = []
    for summary in experiments():
        if summary.ok < 2:
            continue
        try:
            found.append(analysis(summary.name, score_kind))
        except PromptlabError:
            continue  # no scores of this kind yet: nothing to learn from it
    return found


MISSING_IMAGE = "image file missing or changed: `promptlab run` on its experiment file renders it again"


def without_lost_images(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The runs with each run whose image file is gone shown as having no image, and how many those are.

    A page can then draw the rest and mark the lost ones, where the library would refuse a missing file.
    """
    images = frame["image"]
    lost = images.notna() & ~images.map(lambda path: isinstance(path, str) and Path(path).is_file())
    if not lost.any():
        return frame, 0
    return frame.assign(image=images.where(~lost, None)), int(lost.sum())


def thumbnail(path: str, size: int = THUMBNAIL_PX) -> bytes | None:
    """A PNG no larger than ``size`` pixels a side, so a page of images stays light; None where the
    file is missing or unreadable (a lost image)."""
    changed = _changed(path)
    return None if changed is None else _thumbnail(path, changed, size)


@st.cache_data(max_entries=4096, show_spinner=False)
def _thumbnail(path: str, changed: int, size: int) -> bytes | None:
    # ``changed`` keys the cache: a file written again (repaired) is read again.
    try:
        with Image.open(path) as image:
            image.thumbnail((size, size))
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return buffer.getvalue()


def show_image(container: Any, path: str | Path, caption: str | None = None, *, thumb: bool = False) -> bool:
    """Show an image file in ``container``, or a warning where it is missing; whether it was shown."""
    # a "thumbnail" 10,000 pixels a side is the image itself, read (and cached) as the thumbnails are
    data = thumbnail(str(path)) if thumb else thumbnail(str(path), size=10_000)
    if data is None:
        container.warning(f"{caption + ': ' if caption else ''}{MISSING_IMAGE}")
        return False
    if thumb:
        container.image(data, width="stretch")
        if caption:
            container.caption(caption)
    else:
        container.image(data, caption=caption)
    return True


def refresh() -> None:
    """Forget cached reads after this session wrote to the store."""
    _experiments.clear()
    _versions.clear()
    _runs_frame.clear()
    _analysis.clear()
    _planned.clear()
    _grid_plan.clear()
    _cell_scores.clear()
    _grid_levels.clear()


def save_text(path: Path, text: str) -> bool:
    """Write a file the page made; where that is impossible (a read-only home), say so in one red box."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        st.error(f"cannot save {path}: {error.strerror or error}; writing needs a PROMPTLAB_HOME you may write")
        return False
    return True


def experiments_dir() -> Path:
    """Where the Build page saves experiment files: PROMPTLAB_HOME/experiments."""
    return home_dir() / "experiments"


def show_error(error: PromptlabError) -> None:
    """A user's mistake: one red box, no traceback."""
    st.error(str(error))


def score_text(value: Any) -> str:
    """A score as every page shows it: two decimals (as the exported grid), or "no score"."""
    return "no score" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"


_MARKDOWN_SPECIAL = str.maketrans({char: "\\" + char for char in "\\`*_{}[]()<>#+-.!|~$:"})


def markdown_text(text: str) -> str:
    """``text`` escaped for ``st.markdown``, so a label such as "---", "*" or "1." shows as written."""
    return text.translate(_MARKDOWN_SPECIAL)


def pick_score(name: str, key: str, label: str = "Score", where: Any = st) -> tuple[str, str | None]:
    """The score kind (intent or prompt) and, where the experiment has several scorers, which one
    ranks (its file's first by default): widgets keyed ``key``_kind and ``key``_scorer."""
    left, right = where.columns(2)
    kind = left.radio(label, SCORE_KINDS, horizontal=True, key=f"{key}_kind",
                      help="intent: against what the image should show; prompt: against its own prompt")  # fmt: skip
    found = scorers(name)
    if len(found) < 2:
        return kind, None
    chosen = right.selectbox("Scorer", found, key=f"{key}_scorer", help="Which scorer ranks; the file's first by default.")
    right.caption(scorer_traits(chosen).measures)
    return kind, chosen


def pick_experiment(key: str) -> str | None:
    """An experiment select box shared by the pages (remembers the choice across pages)."""
    names = [e.name for e in experiments()]
    if not names:
        st.info("No experiments yet: run one on the **Run** page, or the demo on the **Home** page.")
        return None
    default = st.session_state.get("experiment")
    index = names.index(default) if default in names else 0
    name = st.selectbox("Experiment", names, index=index, key=key)
    st.session_state["experiment"] = name
    return name
