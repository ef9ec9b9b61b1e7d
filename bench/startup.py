"""Start-up time: ``promptlab --help`` (the venv's console script, in a subprocess) and the
dashboard's first page in Streamlit's AppTest with an empty store.

    .venv/bin/python bench/startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine, median, note, temp_home  # noqa: E402

ROOT = temp_home("startup")
REPO = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "diffusers", "open_clip", "transformers", "compel")


def cli_help_seconds() -> float:
    script = Path(sys.executable).parent / "promptlab"
    started = time.perf_counter()
    subprocess.run([str(script), "--help"], check=True, capture_output=True, env=os.environ.copy())
    return time.perf_counter() - started


def heavy_imports_of_help() -> list[str]:
    """Heavy modules that importing the CLI and building its help pulls in (should be none)."""
    code = (
        "import sys\nfrom typer.main import get_command\nfrom promptlab.cli import app\n"
        "get_command(app).get_help\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=REPO)
    return [m for m in out.stdout.strip().split(",") if m]


def dashboard_seconds() -> float:
    """A fresh interpreter per sample, so module imports count as they do for a user."""
    code = (
        "import time\nt = time.perf_counter()\nfrom streamlit.testing.v1 import AppTest\n"
        "at = AppTest.from_file('app.py', default_timeout=120).run()\n"
        "assert not at.exception, at.exception\nprint(time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=REPO)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    os.environ["PROMPTLAB_HOME"] = str(ROOT / "home")
    cli_help_seconds()
    cli = [cli_help_seconds() for _ in range(args.repeats)]
    note(f"promptlab --help: {[round(t, 3) for t in cli]}")
    dashboard = [dashboard_seconds() for _ in range(3)]
    note(f"dashboard first page: {[round(t, 3) for t in dashboard]}")
    emit(
        {
            "cli_help_s": round(median(cli), 3),
            "cli_help_under_1s": median(cli) < 1.0,
            "cli_help_heavy_imports": heavy_imports_of_help(),
            "dashboard_first_page_s": round(median(dashboard), 3),
            "repeats": {"cli_help": args.repeats, "dashboard": 3},
            "machine": machine(),
        }
    )


if __name__ == "__main__":
    main()
