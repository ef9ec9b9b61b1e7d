"""Export: a download button for every export format, the X/Y grid image, and the zip."""

from __future__ import annotations

import io

import streamlit as st

from promptlab.dashboard import data, state
from promptlab.errors import PromptlabError
from promptlab.export import EXPORT_FILE_TYPES, EXPORT_FORMATS, export_rows, grid_axes, grid_image, zip_bytes
from promptlab.paths import database_url


# Each cached call is keyed by the database, the experiment and its version, and reads the frame
# through ``data.runs_frame`` (cached the same way), so new runs give new files.
@st.cache_data(max_entries=8, show_spinner="Ranking the prompts...")
def _export_texts(url: str, name: str, kind: str, scorer: str | None, version: str, top: int) -> dict[str, str]:
    """Every format's text from one ranking (the variants are ranked once, not once per format)."""
    rows = export_rows(data.runs_frame(name, kind, scorer), top)
    return {fmt: writer(rows, name) for fmt, writer in EXPORT_FORMATS.items()}


@st.cache_data(max_entries=16, show_spinner="Drawing the grid...")
def _grid_png(url: str, name: str, kind: str, scorer: str | None, version: str, x: str, y: str) -> bytes:
    buffer = io.BytesIO()
    grid_image(data.runs_frame(name, kind, scorer), x, y).save(buffer, format="PNG")
    return buffer.getvalue()


@st.cache_data(max_entries=4, show_spinner="Packing the zip...")
def _zip_bytes(url: str, name: str, kind: str, scorer: str | None, version: str, top: int) -> bytes:
    return zip_bytes(data.runs_frame(name, kind, scorer), top=top, experiment=name)


def page() -> None:
    st.title("Export")
    name = data.pick_experiment("export_experiment")
    if name is None:
        return
    state.show_state(name)
    top = st.number_input("Best prompts", min_value=1, max_value=100, value=5, key="export_top")
    kind, scorer = data.pick_score(name, "export", "Rank by score")
    key = (database_url(), name, kind, scorer, data.version(name))
    try:
        st.subheader("Best prompts")
        columns = st.columns(4)
        texts = _export_texts(*key, int(top))
        for i, fmt in enumerate(EXPORT_FORMATS):
            file_type = EXPORT_FILE_TYPES[fmt]
            columns[i % 4].download_button(
                fmt, texts[fmt], file_name=f"{name}-{fmt}{file_type.suffix}",
                mime=file_type.mime, key=f"export_{fmt}",
            )  # fmt: skip
        st.subheader("X/Y grid")
        axes = grid_axes(data.runs_frame(name, kind, scorer))
        x_col, y_col = st.columns(2)
        x = x_col.selectbox("Columns (X)", axes, index=0, key="export_grid_x")
        y = y_col.selectbox("Rows (Y)", axes, index=min(1, len(axes) - 1), key="export_grid_y")
        png = _grid_png(*key, x, y)
        st.image(png, caption=f"{name}: {y} by {x}")
        st.download_button("Grid image (PNG)", png, file_name=f"{name}-grid.png", mime="image/png", key="export_grid")
        st.subheader("Everything")
        st.download_button("Images and table (zip)", _zip_bytes(*key, int(top)), file_name=f"{name}.zip",
                           mime="application/zip", key="export_zip")  # fmt: skip
    except PromptlabError as error:
        data.show_error(error)
