"""``python -m promptlab``: the ``promptlab`` command, also as ``accelerate launch -m promptlab run EXPERIMENT.toml``."""

from promptlab.cli import main

main()
