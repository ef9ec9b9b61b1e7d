"""The prompt model: a subject, an ordered list of weighted terms, and a negative prompt.

A prompt renders to three syntaxes and reads back from two:

- ``compel``: ``(oil painting)++``, ``pop+``, ``(term)1.3``; read with compel's own parser.
- ``a1111``: ``(oil painting:1.21)``; read exactly as AUTOMATIC1111's ``parse_prompt_attention``.
- ``plain``: the text without weights, which is what the CLIP text encoder reads.

Pure Python: this module never imports torch (compel's parser is loaded without compel's
package, whose ``__init__`` imports torch).

    >>> p = Prompt("fat cat lies on the couch", [Term("oil painting", 1.21, "medium")])
    >>> p.to_compel()
    'fat cat lies on the couch, (oil painting)++'
    >>> p.to_a1111()
    'fat cat lies on the couch, (oil painting:1.21)'
    >>> convert("a cat, (pop-art:1.1), [blurry]", "a1111", "compel")
    'a cat, (pop-art)+, (blurry)0.909091'
    >>> parse_a1111("maine coon (cat:1.2) in the park").to_compel()
    'maine coon (cat)1.2 in the park'

``convert`` does not go through the model: it rewrites the text fragment for fragment, so
even a weighted comma or a ``BREAK`` (which terms cannot hold) reaches the other syntax intact.

Reading prompt text into the model (``parse_compel``, ``parse_a1111``):

1. The syntax's own reader turns the text into (text, weight) chunks.
2. The chunks' text is split on commas; each segment's whitespace is collapsed to single spaces;
   empty segments are skipped.
3. A segment whose chunks carry different weights (``a (red) car``) is one term whose
   ``fragments`` keep each chunk's text and weight: no weight is ever dropped or averaged.
4. The first segment is the subject when it has one weight, 1.0; a weighted first segment is a
   term and the subject is empty (the subject carries no weight, and a weight is never dropped).
5. Weights are rounded to 9 decimals, dropping the float noise of nested multipliers
   (1.1 * 1.1 = 1.2100000000000002).

Known limits of compel (documented, not worked around):

- Only ``(``, ``)`` and ``"`` can be escaped: compel's parser also accepts ``\\,`` ``\\.``
  ``\\+`` ``\\-`` ``\\=``, but passes their backslash on to the text encoder.
- Inside a weighted group compel reads ``.`` as a word of its own: ``(x.y)+`` reaches the
  encoder as ``x . y``, and reads back so. CLIP's tokenizer splits punctuation from letters
  anyway, so the tokens are the same (runs like ``..`` aside).
- A ``+`` or ``-`` that ends a word is a weight operator to compel (``c++`` is ``c`` at 1.21),
  and inside a weighted group so is a free-standing one (``a - b``); a ``=`` or a trailing
  backslash breaks a weighted group; a backslash before ``(`` ``)`` ``"`` is taken for an
  escape. ``to_compel`` raises ``PromptSyntaxError`` for such text rather than let compel
  silently change it.
"""

from __future__ import annotations

from promptlab.prompt.a1111 import a1111_parts, parse_a1111_attention
from promptlab.prompt.compel import compel_parts
from promptlab.prompt.convert import compel_prompt, convert, write_parts
from promptlab.prompt.model import Categorized, Prompt, TermLookup, parse_a1111, parse_compel
from promptlab.prompt.terms import SOURCE_SYNTAXES, STYLE_PLACEHOLDER, SYNTAXES, Fragment, Term

__all__ = [
    "SOURCE_SYNTAXES",
    "STYLE_PLACEHOLDER",
    "SYNTAXES",
    "Categorized",
    "Fragment",
    "Prompt",
    "Term",
    "TermLookup",
    "a1111_parts",
    "compel_parts",
    "compel_prompt",
    "convert",
    "parse_a1111",
    "parse_a1111_attention",
    "parse_compel",
    "write_parts",
]
