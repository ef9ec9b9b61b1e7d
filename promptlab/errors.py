"""promptlab's exceptions: one small tree, so callers catch ``PromptlabError`` and show its message.

Every message names the input, the value received and the rule, and where it helps, the fix.
The CLI prints a ``PromptlabError`` as one line and exits 1; the dashboard shows it with
``st.error``. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class PromptlabError(Exception):
    """Base class of every error promptlab raises on purpose."""


class VocabError(PromptlabError):
    """A vocabulary file is malformed: names the file, the line where known, and the problem."""


class PromptSyntaxError(PromptlabError):
    """Prompt text that no reading can make sense of.

    ``position`` is the 0-based character offset of the problem in ``text``.
    """

    def __init__(self, message: str, *, text: str = "", position: int | None = None) -> None:
        self.text = text
        self.position = position
        if position is not None:
            message = f"{message} (at character {position + 1})"
        super().__init__(message)


class ModelError(PromptlabError):
    """A model cannot be found, downloaded or loaded."""


class RenderError(PromptlabError):
    """A render request is invalid (bad parameter, unsupported task for the model family, bad image)."""


class ScoringError(PromptlabError):
    """A scorer cannot be built or cannot score the given input."""


class ExperimentError(PromptlabError):
    """An experiment file is invalid: names the key, the value and what was expected."""


class SearchError(ExperimentError):
    """A search's ``[search]`` table or its run is invalid: names the key, the value and the fix."""


class StoreError(PromptlabError):
    """The run store cannot be opened or a record cannot be found."""


class CellTakenError(StoreError):
    """Cells are already recorded as ok (by another runner sharing the store): ``cells`` lists them as (variant key, seed)."""

    def __init__(self, message: str, *, cells: tuple[tuple[str, int], ...] = ()) -> None:
        self.cells = cells
        super().__init__(message)


class PeerStoppedError(PromptlabError):
    """A process of a launch left a step every process takes together, because another one stopped first."""


class ImportMetadataError(PromptlabError):
    """An image or file carries no metadata promptlab can read."""


class ExportError(PromptlabError):
    """An export cannot be produced (unknown format, empty experiment, bad axis)."""
