"""Keeping diffusers and transformers quiet while promptlab loads, builds or saves models.

Library code never prints: their progress bars ("Loading pipeline components", "Writing model
shards") and notices are for their own users, not promptlab's; errors still raise.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_libraries() -> Iterator[None]:
    """Library code never prints: silence diffusers' and transformers' progress bars and notices, then restore them."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    bars = (diffusers_logging.is_progress_bar_enabled(), transformers_logging.is_progress_bar_enabled())
    levels = (diffusers_logging.get_verbosity(), transformers_logging.get_verbosity())
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    # Loading chatter (fp32-module notices, "will try the local cache") is not for users; errors still raise.
    diffusers_logging.set_verbosity_error()
    transformers_logging.set_verbosity_error()
    try:
        yield
    finally:
        diffusers_logging.set_verbosity(levels[0])
        transformers_logging.set_verbosity(levels[1])
        if bars[0]:
            diffusers_logging.enable_progress_bar()
        if bars[1]:
            transformers_logging.enable_progress_bar()
