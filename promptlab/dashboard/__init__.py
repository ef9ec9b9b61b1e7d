"""The Streamlit dashboard: ``app.py`` routes, one module here per page, ``data`` caches the store.

    promptlab dashboard                        # or: streamlit run app.py --server.address 127.0.0.1
    subprocess.run(dashboard_command(8501))    # what ``promptlab dashboard`` runs

The address is given on the command line, so the dashboard listens on this machine only from
any working directory (Streamlit reads ``.streamlit/config.toml`` from the working directory
alone). Started without an address at all, Streamlit listens on every interface: the app then
shows how to start it instead of the store (``unbound``).
"""

from __future__ import annotations

import sys
from promptlab.paths import dashboard_app

#: The entry point ``streamlit run`` opens: it only routes to the pages in this package.
APP_PATH = dashboard_app()
#: Bind to this machine only unless the user asks for another address.
DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORT = 8501


#: What the app shows instead of the store when Streamlit was started without an address.
UNBOUND_MESSAGE = (
    "This dashboard was started without an address, so Streamlit listens on every network interface and "
    "anyone who can reach this machine could read your runs. Start it with `promptlab dashboard` (or "
    "`streamlit run app.py --server.address 127.0.0.1`); to open it up on purpose, pass --server.address 0.0.0.0."
)


def unbound() -> bool:
    """Whether Streamlit was started without ``server.address``, which makes it listen on every interface."""
    import streamlit as st

    return not st.get_option("server.address")


def dashboard_command(port: int = DEFAULT_PORT, address: str = DEFAULT_ADDRESS) -> list[str]:
    """The argv that starts the dashboard with this interpreter's streamlit: headless, no telemetry, no
    Deploy button or developer menu (``client.toolbarMode minimal``), and no watching of source files
    (a user's dashboard does not reload on edits, and a big working tree overflows inotify)."""
    return [
        sys.executable, "-m", "streamlit", "run", str(APP_PATH),
        "--server.port", str(port),
        "--server.address", address,
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "minimal",
        "--server.fileWatcherType", "none",
    ]  # fmt: skip
