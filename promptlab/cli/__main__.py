"""``python -m promptlab.cli``: the ``promptlab`` command."""

from promptlab.cli import main

main()
