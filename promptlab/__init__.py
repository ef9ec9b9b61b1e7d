"""promptlab: measured prompt experiments for Stable Diffusion.

Data flows one way: vocab -> prompt -> render -> scoring -> store -> analysis/export.
This module stays light: importing ``promptlab`` never imports torch.
"""

from promptlab.errors import PromptlabError

__version__ = "0.1.0"

__all__ = ["PromptlabError", "__version__"]
