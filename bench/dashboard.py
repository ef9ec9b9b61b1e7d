"""The dashboard with 10,000 runs: seconds for each page's first render and a rerun, in AppTest.

Fills a temp store with 10,000 runs over 2 experiments (bulk insert, real PNG files for the
images), then renders each page with the first experiment (5,000 runs) selected. Streamlit's
caches are cleared before each page, so every first render pays its own reads and analysis.
Prints one JSON line.
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, machine, note, temp_home  # noqa: E402

PAGES = ("home", "build", "run", "compare", "insights", "history", "export")


def main() -> None:
    from PIL import Image
    from store import bulk_insert  # bench/store.py: the same synthetic runs

    home = temp_home("dashboard")
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from promptlab.store import open_store

    with open_store() as store:
        bulk_insert(store, 10_000, 2)
        note("inserted 10,000 runs; writing their image files")
        buffer = io.BytesIO()
        Image.new("RGB", (64, 64), (120, 90, 200)).save(buffer, format="PNG")
        folder = store.home / "images"
        folder.mkdir(parents=True, exist_ok=True)
        for run_id in range(1, 10_001):
            (folder / f"{run_id:064x}.png").write_bytes(buffer.getvalue())
    seconds: dict[str, dict[str, float]] = {}
    for page in PAGES:
        st.cache_data.clear()
        st.cache_resource.clear()
        at = AppTest.from_string(f"from promptlab.dashboard import {page}\n{page}.page()", default_timeout=120)
        start = time.perf_counter()
        at.run()
        first = time.perf_counter() - start
        start = time.perf_counter()
        at.run()
        again = time.perf_counter() - start
        errors = [e.value for e in at.exception] + [e.value for e in at.error]
        seconds[page] = {"first_s": round(first, 3), "rerun_s": round(again, 3)}
        if errors:
            seconds[page]["errors"] = errors  # type: ignore[assignment]
        note(f"{page}: {seconds[page]}")
    emit({"runs": 10_000, "home": str(home), "pages": seconds, "machine": machine()})


if __name__ == "__main__":
    main()
