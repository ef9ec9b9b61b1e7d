"""The Streamlit dashboard: ``app.py`` routes, one module here per page, ``data`` caches the store.

    streamlit run app.py                       # or: promptlab dashboard
    subprocess.run(dashboard_command(8501))    # what ``promptlab dashboard`` runs
"""

from __future__ import annotations

import sys
from pathlib import Path

#: The entry point ``streamlit run`` opens: it only routes to the pages in this package.
APP_PATH = Path(__file__).resolve().parent.parent.parent / "app.py"
#: Bind to this machine only unless the user asks for another address.
DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORT = 8501


def dashboard_command(port: int = DEFAULT_PORT, address: str = DEFAULT_ADDRESS) -> list[str]:
    """The argv that starts the dashboard with this interpreter's streamlit, headless, no telemetry."""
    return [
        sys.executable, "-m", "streamlit", "run", str(APP_PATH),
        "--server.port", str(port),
        "--server.address", address,
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
