"""The search: find the prompt a scorer rates best against an intent, within a budget of images, and prove it.

    spec = load_search("examples/star-search.toml")
    with open_store() as store:
        result = run_search(spec, store, progress=print)
    format_search(result)   # the winner in both syntaxes, its gain with CI, the budget spent, the path

How it searches (``[search] method = "halving"``, the default): successive halving over
generations, written plainly over shared seeds.

1. Round 1 holds the starting prompt (the subject and the file's fixed terms) and random
   candidates from the pool: at most one term per group, ``max_terms`` at most, each weight
   from the ``weights`` grid (steps of 0.1).
2. Every candidate of a round is rendered on the round's ``round_seeds`` new seeds, the same for
   all, so candidates are compared on the same noise. A candidate's standing is its mean score
   against the intent over every seed it has had, less ``TERM_COST`` per term (of two that
   score alike the shorter wins, so words that change nothing fall away).
3. The best quarter survives and is rendered again next round (strong candidates collect more
   seeds); the others are dropped and replaced by mutations of the survivors (a term added,
   dropped or swapped within its group, a weight moved one step, a term moved when ``order``).
   A term added or swapped in is one of its group's least drawn so far, so every colour of
   seven is tried before any twice, however many artists share the pool.
4. The rounds stop where the last one would get less than ``FINAL_SEEDS`` seeds for the leader
   and each of its neighbours (a third of the budget at most). The last round renders the leader,
   the leader with each of its terms dropped, and the leader with one more term from each group
   it lacks (the group's term whose candidates scored best on average), all on the same new
   seeds. The best of them on those seeds wins, less every one of the leader's terms whose drop
   cost under ``TERM_COST`` there: a word that earns nothing goes, and two such words go
   together (ranking alone would drop one at most).
5. The winner and the starting prompt are rendered on ``confirm_seeds`` fresh seeds, never used
   to choose, and compared by ``promptlab.analysis`` (the paired effect, its calibrated CI):
   selection on the same seeds would inflate the gain.

``method = "random"`` is random search with the same budget (the start and random candidates,
each on the same ``round_seeds`` seeds, then the same confirmation): the baseline a search must beat.

Why not Optuna: its samplers model independent parameters (TPE, CMA-ES) and its pruners stop a
trial part-way through one learning curve; here a "trial" is a set of terms whose scores are
only comparable on shared seeds, and the runner already gives resumable, recorded evaluation.
Halving over shared seeds is a few dozen lines that say exactly which seeds chose the winner.

Every image is a normal run of the experiment named by the file's ``name``: Compare, Insights,
History and Export read it (each pool group is an axis, "" where a candidate has no term of it).
Running the same file again resumes: the rounds replay from ``[search] seed`` and the
recorded scores, and the runner renders only the cells the store lacks.
"""

from promptlab.search.candidates import ORDER_AXIS, Candidate, Space
from promptlab.search.result import (
    Round,
    Scored,
    SearchProgress,
    SearchResult,
    TermStep,
    format_search,
)
from promptlab.search.rounds import (
    FINAL_SEEDS,
    PROMPT_AXIS,
    TERM_COST,
    SearchCallback,
    run_search,
    search_seeds,
)
from promptlab.search.spec import (
    DEFAULT_CONFIRM_SEEDS,
    DEFAULT_POPULATION,
    DEFAULT_ROUND_SEEDS,
    METHODS,
    SEARCH_KEYS,
    WEIGHT_STEP,
    SearchSpec,
    draft_search,
    load_search,
    parse_search,
    written_prompt,
)

__all__ = [
    "DEFAULT_CONFIRM_SEEDS",
    "DEFAULT_POPULATION",
    "DEFAULT_ROUND_SEEDS",
    "FINAL_SEEDS",
    "METHODS",
    "ORDER_AXIS",
    "PROMPT_AXIS",
    "SEARCH_KEYS",
    "TERM_COST",
    "WEIGHT_STEP",
    "Candidate",
    "Round",
    "Scored",
    "SearchCallback",
    "SearchProgress",
    "SearchResult",
    "SearchSpec",
    "Space",
    "TermStep",
    "draft_search",
    "format_search",
    "load_search",
    "parse_search",
    "run_search",
    "search_seeds",
    "written_prompt",
]
