"""What the pages say about each experiment's state: how far it got (``analysis.progress``), cached
until it gets new runs, and small thumbnails as data URLs for a table's image column."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from urllib.parse import quote

import streamlit as st

from promptlab.analysis.progress import ExperimentState, experiment_state, format_cells
from promptlab.dashboard import data
from promptlab.errors import PromptlabError
from promptlab.paths import database_url

#: Thumbnails in a table row: small, so a page of 50 rows stays light.
ROW_THUMBNAIL_PX = 64


@st.cache_data(max_entries=256, show_spinner=False)
def _state(url: str, name: str, version: str) -> ExperimentState | str:
    try:
        return experiment_state(data.store(), name)
    except PromptlabError as error:
        return str(error).splitlines()[0]


def state(name: str) -> ExperimentState | str:
    """``analysis.progress.experiment_state`` of the experiment by intent score, cached until it gets
    new runs; where it cannot be told (several intent scorers), the one-line reason instead."""
    return _state(database_url(), name, data.version(name))


def state_text(name: str) -> str:
    """``Complete: 4 of 4 cells done``, ``Incomplete: ...``, or why the state cannot be told."""
    found = state(name)
    return found if isinstance(found, str) else format_cells(found.cells)


def incomplete(name: str) -> bool:
    found = state(name)
    return not isinstance(found, str) and found.incomplete


def marked(name: str) -> str:
    """The experiment's name as a select box shows it: ``dash (incomplete)`` where it is."""
    return f"{name} (incomplete)" if incomplete(name) else name


def show_state(name: str) -> None:
    """An incomplete experiment as a warning above the page's numbers, a complete one as a caption."""
    if incomplete(name):
        st.warning(f"{state_text(name)}: what follows is from the cells done so far.")
    else:
        st.caption(state_text(name))


def thumbnail_url(path: str | Path | None, missing: str = "no image") -> str:
    """A PNG data URL of the image no larger than ``ROW_THUMBNAIL_PX`` a side, for
    ``st.column_config.ImageColumn``; where there is no image or its file is gone, a grey square
    saying ``missing`` (or "file missing"), so a cell never shows a bare None."""
    if not path:
        return placeholder_url(missing)
    png = data.thumbnail(str(path), size=ROW_THUMBNAIL_PX)
    if png is None:
        return placeholder_url("file missing")
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def placeholder_url(text: str) -> str:
    """An SVG data URL: a grey square with ``text`` in it."""
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{ROW_THUMBNAIL_PX}" height="{ROW_THUMBNAIL_PX}">'
        '<rect width="100%" height="100%" fill="#eee"/>'
        '<text x="50%" y="50%" font-family="sans-serif" font-size="11" fill="#666" text-anchor="middle" '
        f'dominant-baseline="middle">{html.escape(text)}</text></svg>'
    )
    return "data:image/svg+xml;utf8," + quote(svg)
