"""The store's read side: experiments, runs and their views, the analysis frame, lost images.

``StoreReader`` holds the connection and every query the dashboard and CLI make; ``Store``
(``writes.py``) adds the writes. Each method runs its own short session.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import and_, column, func, inspect, literal, table, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session, select

from promptlab.errors import StoreError
from promptlab.store.connection import READ_ONLY_HINT, database_reason, looks_read_only
from promptlab.store.files import MAX_PARALLEL_WRITES, file_problem
from promptlab.store.records import BrokenImage, ExperimentSummary, RunToScore, RunView, ScoreView, utc
from promptlab.store.schema import PARAM_COLUMNS, SCORE_KINDS, STATUSES, Experiment, Image, Run, RunTerm, Score
from promptlab.store.votes import VoteRun, VoteView, scores_frame, vote_runs_query, vote_scores_query, vote_view, votes_query

# FTS5's trigram tokenizer matches substrings of 3 characters or more.
FTS_MIN_CHARS = 3


class StoreReader:
    """The run store's reads. Each method runs its own short session; the object is cheap to keep open."""

    def __init__(self, engine: Engine, home: Path, *, read_only: bool = False) -> None:
        self.engine = engine
        self.home = Path(home)
        self.url = engine.url.render_as_string(hide_password=True)
        self.read_only = read_only
        self._writer = engine.execution_options(promptlab_write=True)
        self._fts = engine.dialect.name == "sqlite" and inspect(engine).has_table("run_fts")


    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    def db_path(self) -> Path | None:
        """The SQLite file, or None for another database (see ``url``)."""
        if self.engine.dialect.name != "sqlite" or self.engine.url.database in (None, "", ":memory:"):
            return None
        return Path(self.engine.url.database)

    @property
    def images_dir(self) -> Path:
        return self.home / "images"

    def image_path(self, sha256: str) -> Path:
        """Where the image with this hash lives."""
        return self.images_dir / f"{sha256}.png"

    @property
    def inputs_dir(self) -> Path:
        return self.home / "inputs"

    def _check_writable(self) -> None:
        if self.read_only:
            raise StoreError(
                f"database {self.url} is open read-only, so nothing can be written to it; "
                "open it where it may be written (promptlab run, render and import do)"
            )

    @contextmanager
    def _session(self, write: bool = False) -> Iterator[Session]:
        """A short session; database errors become one-line StoreError naming the database."""
        if write:
            self._check_writable()
        try:
            with Session(self._writer if write else self.engine, expire_on_commit=False) as session:
                yield session
        except IntegrityError:
            raise
        except SQLAlchemyError as exc:
            action = "write to" if write else "read"
            hint = READ_ONLY_HINT if write and looks_read_only(exc) else ""
            raise StoreError(f"cannot {action} database {self.url}: {database_reason(exc)}{hint}") from exc

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """A short write transaction on a bare connection (no ORM session: a run's rows are written in bulk).

        Database errors become one-line StoreError naming the database; an IntegrityError is left to the caller.
        """
        self._check_writable()
        try:
            with self._writer.begin() as conn:
                yield conn
        except IntegrityError:
            raise
        except SQLAlchemyError as exc:
            hint = READ_ONLY_HINT if looks_read_only(exc) else ""
            raise StoreError(f"cannot write to database {self.url}: {database_reason(exc)}{hint}") from exc

    def get_experiment(self, experiment: str | int) -> Experiment:
        """The experiment with this name or id; StoreError if there is none."""
        with self._session() as session:
            column_ = Experiment.id if isinstance(experiment, int) else Experiment.name
            row = session.exec(select(Experiment).where(column_ == experiment)).first()
        if row is None:
            raise StoreError(f"no experiment {experiment!r} in {self.url}")
        return row

    def list_experiments(self) -> list[ExperimentSummary]:
        """Every experiment, newest first, with its run counts and models.

        The runs are counted by experiment, model and status in one pass over an index
        (``ix_run_experiment_model_status``), never over the run rows themselves.
        """
        experiments = select(Experiment).order_by(Experiment.created_at.desc(), Experiment.id.desc())
        counts = select(Run.experiment_id, Run.model, Run.status, func.count(), func.max(Run.created_at)).group_by(
            Run.experiment_id, Run.model, Run.status
        )
        with self._session() as session:
            rows = session.exec(experiments).all()
            tallies = session.exec(counts).all()
        by_experiment: dict[int, _Tally] = {}
        for experiment_id, model, status, count, last in tallies:
            by_experiment.setdefault(experiment_id, _Tally()).add(model, status, count, utc(last))
        empty = _Tally()
        return [
            ExperimentSummary(
                id=row.id,
                name=row.name,
                source_path=row.source_path,
                subject=row.subject,
                intent=row.intent,
                created_at=utc(row.created_at),
                runs=tally.runs,
                ok=tally.ok,
                failed=tally.failed,
                models=sorted(tally.models),
                last_run_at=tally.last,
            )
            for row in rows
            for tally in [by_experiment.get(row.id, empty)]
        ]

    def existing_cells(self, experiment_id: int, *, include_failed: bool = False) -> set[tuple[str, int]]:
        """The (variant key, seed) cells already recorded; failed ones only with ``include_failed``.

        A runner skips these; failed cells are left out by default so a rerun retries them.
        """
        query = select(Run.variant_key, Run.seed).where(Run.experiment_id == experiment_id)
        if not include_failed:
            query = query.where(Run.status == "ok")
        with self._session() as session:
            return {(key, seed) for key, seed in session.exec(query)}

    def find_run(self, experiment_id: int, variant_key: str, seed: int) -> Run | None:
        """The run recorded for a cell, ok or failed, or None."""
        query = select(Run).where(Run.experiment_id == experiment_id, Run.variant_key == variant_key, Run.seed == seed)
        with self._session() as session:
            return session.exec(query).first()

    def broken_images(self, experiment_id: int | None = None) -> list[BrokenImage]:
        """Runs recorded as ok whose image file is missing or not the recorded bytes (sha256), oldest first."""
        query = (
            select(Run.id, Run.variant_key, Run.seed, Image.sha256, Image.path)
            .join(Image, Image.sha256 == Run.image_sha256)
            .where(Run.status == "ok")
            .order_by(Run.id)
        )
        if experiment_id is not None:
            query = query.where(Run.experiment_id == experiment_id)
        with self._session() as session:
            rows = session.exec(query).all()
        paths = {sha256: self.home / path for _, _, _, sha256, path in rows}
        with ThreadPoolExecutor(max_workers=min(len(paths), MAX_PARALLEL_WRITES) or 1) as pool:
            problems = dict(zip(paths, pool.map(file_problem, paths.values(), paths)))
        return [
            BrokenImage(run_id, key, seed, paths[sha256], problems[sha256])
            for run_id, key, seed, sha256, _ in rows
            if problems[sha256] is not None
        ]

    def image_problem(self, sha256: str) -> str | None:
        """``missing`` or ``changed`` where the image file with this hash is not what was recorded, else None."""
        return file_problem(self.image_path(sha256), sha256)

    def get_run(self, run_id: int) -> RunView:
        """The run with this id; StoreError if there is none."""
        views = self._views(select(*_VIEW_COLUMNS).where(Run.id == run_id))
        if not views:
            raise StoreError(f"no run {run_id} in {self.url}")
        return views[0]

    def list_runs(
        self,
        experiment: str | int | None = None,
        search: str | None = None,
        model: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
        *,
        term: str | None = None,
        status: str | None = None,
    ) -> list[RunView]:
        """Runs newest first, filtered; ``search`` matches the plain prompt text, ignoring case.

        ``term`` keeps runs whose prompt has that term (exactly as written); ``since`` and
        ``until`` bound ``created_at`` (naive datetimes are UTC; ``until`` is exclusive).
        """
        if limit < 0 or offset < 0:
            raise StoreError(f"list_runs: limit = {limit}, offset = {offset}: expected numbers >= 0")
        # 1. The page's ids: sorting ids and times costs little, sorting whole rows (prompts, JSON) does not.
        page = self._filtered(select(Run.id), experiment, search, model, since, until, term, status, newest_first=True)
        with self._session() as session:
            ids = list(session.exec(page.order_by(Run.created_at.desc(), Run.id.desc()).limit(limit).offset(offset)))
        if not ids:
            return []
        # 2. Those runs, whole, in the page's order.
        views = {view.id: view for view in self._views(select(*_VIEW_COLUMNS).where(Run.id.in_(ids)))}
        return [views[run_id] for run_id in ids if run_id in views]

    def count_runs(
        self,
        experiment: str | int | None = None,
        search: str | None = None,
        model: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        term: str | None = None,
        status: str | None = None,
    ) -> int:
        """How many runs ``list_runs`` would return without a limit."""
        needle = (search or "").strip()
        if self._fts and len(needle) >= FTS_MIN_CHARS and (experiment, model, since, until, term, status) == (None,) * 6:
            # The search alone: the index counts its matches without reading a run.
            query = select(func.count()).select_from(table("run_fts")).where(text("run_fts MATCH :phrase"))
            with self._session() as session:
                return int(session.exec(query.params(phrase=_fts_phrase(needle))).one())  # type: ignore[call-overload]
        query = self._filtered(select(func.count(Run.id)), experiment, search, model, since, until, term, status)
        with self._session() as session:
            return int(session.exec(query).one())

    def list_votes(self, experiment: str | int) -> list[VoteView]:
        """The experiment's votes, oldest first, each with both runs' variants, seed and subject."""
        row = self.get_experiment(experiment)
        with self._session() as session:
            return [vote_view(found) for found in session.exec(votes_query(row.id)).all()]

    def vote_runs(self, experiment: str | int) -> list[VoteRun]:
        """The experiment's finished runs with an image, by id: the runs a vote can show."""
        row = self.get_experiment(experiment)
        with self._session() as session:
            found = session.exec(vote_runs_query(row.id)).all()
        return [VoteRun(run_id, key, label, seed, subject, self.home / path) for run_id, key, label, seed, subject, path in found]

    def vote_scores(self, experiment: str | int, kind: str = "intent") -> pd.DataFrame:
        """The ``kind`` scores of the runs the experiment's votes name: columns run_id, scorer, value."""
        row = self.get_experiment(experiment)
        query = vote_scores_query(row.id, kind)
        with self._session() as session:
            return scores_frame(list(session.exec(query).all()))

    def run_timings(self, model: str, width: int | None = None, height: int | None = None, *, limit: int = 200) -> pd.DataFrame:
        """The seconds the newest ``limit`` successful runs of ``model`` at ``width`` x ``height`` (any size
        where None) took: columns render_s and score_s (NaN where not recorded), newest first."""
        query = select(Run.render_s, Run.score_s).where(Run.model == model, Run.status == "ok")
        if width is not None:
            query = query.where(Run.width == width)
        if height is not None:
            query = query.where(Run.height == height)
        query = query.order_by(Run.created_at.desc(), Run.id.desc()).limit(limit)  # type: ignore[attr-defined, union-attr]
        with self._session() as session:
            rows = session.exec(query).all()
        return pd.DataFrame([tuple(row) for row in rows], columns=["render_s", "score_s"], dtype=float)

    def runs_frame(self, experiment: str | int, score_kind: str = "intent", scorer: str | None = None) -> pd.DataFrame:
        """One row per run of ``experiment``, in recording order, for ``promptlab.analysis``.

        Columns: run_id, variant_key, label, seed, subject, intent, prompt (compel syntax),
        prompt_a1111, prompt_plain, negative_prompt, model, task, the ``PARAM_COLUMNS``,
        status, error, terms, params, axes, score (NaN when failed or unscored), scorer (its
        name, or None when the experiment has no scores of ``score_kind``), image (the
        file's path, or None), render_s, score_s, created_at, and one ``axis:<name>`` column
        per axis (the subject axis is the ``subject`` column). ``scorer`` picks one of the
        experiment's scorers (``scorers``); by default the one that ranks: the first its file names.
        """
        if score_kind not in SCORE_KINDS:
            raise StoreError(f"score kind {score_kind!r}: expected one of {', '.join(SCORE_KINDS)}")
        row = self.get_experiment(experiment)
        found = self._scorers_of(row, score_kind)
        if scorer is not None and found and scorer not in found:
            raise StoreError(
                f"scorer {scorer!r}: experiment {row.name!r} has no {score_kind} scores from it; it has scores from "
                f"{', '.join(found)} (add some with `promptlab score --experiment {row.name} --scorer {scorer}`)"
            )
        scorer = scorer or self._ranking_scorer(row, found)
        score_join = and_(Score.run_id == Run.id, Score.kind == score_kind, Score.scorer == scorer)
        query = (
            select(
                Run.id.label("run_id"), Run.variant_key, Run.label, Run.seed, Run.subject, Run.intent,
                Run.prompt, Run.prompt_a1111, Run.prompt_plain, Run.negative_prompt, Run.model, Run.task,
                *(getattr(Run, name) for name in PARAM_COLUMNS),
                Run.status, Run.error, Run.terms, Run.params, Run.axes,
                Score.value.label("score"), (literal(f"{self.home.as_posix()}/") + Image.path).label("image"),
                Run.render_s, Run.score_s, Run.created_at,
            )  # fmt: skip
            .outerjoin(Score, score_join)
            .outerjoin(Image, Image.sha256 == Run.image_sha256)
            .where(Run.experiment_id == row.id)
            .order_by(Run.id)
        )
        try:
            with self.engine.connect() as conn:
                result = conn.execute(query)
                frame = pd.DataFrame(result.all(), columns=list(result.keys()))
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read database {self.url}: {database_reason(exc)}") from exc
        frame["score"] = pd.to_numeric(frame["score"]).astype(float)
        frame["scorer"] = scorer
        frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
        axes = pd.DataFrame(frame["axes"].tolist(), index=frame.index).drop(columns="subject", errors="ignore")
        return pd.concat([frame, axes.add_prefix("axis:")], axis=1)

    def scorers(self, experiment: str | int, kind: str = "intent") -> list[str]:
        """The scorers with ``kind`` scores in ``experiment``, the ranking one first: the first its file names."""
        row = self.get_experiment(experiment)
        found = self._scorers_of(row, kind)
        ranking = self._ranking_scorer(row, found)
        return [ranking, *(name for name in found if name != ranking)] if ranking else []

    def runs_to_score(self, experiment: str | int, scorer: str) -> list[RunToScore]:
        """The finished runs of ``experiment`` with an image but no intent score from ``scorer``, oldest first."""
        row = self.get_experiment(experiment)
        scored = select(Score.run_id).where(Score.scorer == scorer, Score.kind == "intent")
        query = (
            select(Run.id, Image.path, Run.intent, Run.prompt_plain)
            .join(Image, Image.sha256 == Run.image_sha256)
            .where(Run.experiment_id == row.id, Run.status == "ok", Run.id.not_in(scored))
            .order_by(Run.id)
        )
        with self._session() as session:
            rows = session.exec(query).all()
        return [RunToScore(run_id, self.home / path, intent, plain) for run_id, path, intent, plain in rows]

    def _scorers_of(self, experiment: Experiment, kind: str) -> list[str]:
        """The scorers of ``kind`` scores in ``experiment``, in the order of their first score."""
        query = (
            select(Score.scorer, func.min(Score.id))
            .join(Run, Run.id == Score.run_id)
            .where(Run.experiment_id == experiment.id, Score.kind == kind)
            .group_by(Score.scorer)
            .order_by(func.min(Score.id))
        )
        with self._session() as session:
            return [name for name, _ in session.exec(query).all()]

    @staticmethod
    def _ranking_scorer(experiment: Experiment, found: Sequence[str]) -> str | None:
        """Of the scorers ``found``, the one that ranks: the first its file names (``scorer``, or the
        first of ``scorers``) where it has scores, else the first that scored a run."""
        named = experiment.spec.get("scorers") or [experiment.spec.get("scorer")]
        return next((name for name in named if name in found), found[0] if found else None)

    def _filtered(
        self,
        query: Any,
        experiment: str | int | None,
        search: str | None,
        model: str | None,
        since: datetime | None,
        until: datetime | None,
        term: str | None,
        status: str | None,
        *,
        newest_first: bool = False,
    ) -> Any:
        if experiment is not None:
            query = query.where(Run.experiment_id == self.get_experiment(experiment).id)
        if search and search.strip():
            query = query.where(self._search_clause(search.strip(), newest_first=newest_first))
        if model is not None:
            query = query.where(Run.model == model)
        if since is not None:
            query = query.where(Run.created_at >= self._stamp(since))
        if until is not None:
            query = query.where(Run.created_at < self._stamp(until))
        if term is not None:
            query = query.where(Run.id.in_(select(RunTerm.run_id).where(RunTerm.text == term)))
        if status is not None:
            if status not in STATUSES:
                raise StoreError(f"status {status!r}: expected one of {', '.join(STATUSES)}")
            query = query.where(Run.status == status)
        return query

    def _search_clause(self, needle: str, *, newest_first: bool = False) -> Any:
        """Runs whose plain prompt holds ``needle``; ``newest_first`` for a page ordered by time.

        Such a page walks the runs newest first (an index on the time) and stops at its last match:
        ``id + 0`` keeps SQLite from fetching every match by id and sorting them all instead (a word
        in a quarter of 100,000 prompts: 9 ms against 21 ms, and the gap grows with the store).
        """
        if self._fts and len(needle) >= FTS_MIN_CHARS:
            matches = select(column("rowid")).select_from(table("run_fts")).where(text("run_fts MATCH :phrase"))
            run_id = Run.id + 0 if newest_first else Run.id
            return run_id.in_(matches.params(phrase=_fts_phrase(needle)))
        escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return Run.prompt_plain.ilike(f"%{escaped}%", escape="\\")

    def _stamp(self, moment: datetime) -> datetime:
        # SQLite keeps datetimes as text without a zone: compare in UTC, as they are stored.
        moment = utc(moment)
        return moment.replace(tzinfo=None) if self.engine.dialect.name == "sqlite" else moment

    def _views(self, query: Any) -> list[RunView]:
        with self._session() as session:
            rows = session.exec(query.join(Experiment).outerjoin(Image, Image.sha256 == Run.image_sha256)).all()
            ids = [row[0].id for row in rows]
            scores: dict[int, list[ScoreView]] = {}
            if ids:
                for score in session.exec(select(Score).where(Score.run_id.in_(ids)).order_by(Score.id)):
                    scores.setdefault(score.run_id, []).append(ScoreView.model_validate(score, from_attributes=True))
        return [self._view(run, name, path, scores.get(run.id, [])) for run, name, path in rows]

    def _view(self, run: Run, experiment: str, path: str | None, scores: list[ScoreView]) -> RunView:
        columns = {name: getattr(run, name) for name in PARAM_COLUMNS if getattr(run, name) is not None}
        assert run.id is not None
        return RunView(
            id=run.id,
            experiment_id=run.experiment_id,
            experiment=experiment,
            variant_key=run.variant_key,
            label=run.label,
            seed=run.seed,
            prompt=run.prompt,
            prompt_a1111=run.prompt_a1111,
            prompt_plain=run.prompt_plain,
            negative_prompt=run.negative_prompt,
            subject=run.subject,
            intent=run.intent,
            model=run.model,
            task=run.task,
            params={**columns, **run.params},
            terms=run.terms,
            axes=run.axes,
            status=run.status,
            error=run.error,
            image_sha256=run.image_sha256,
            image_path=self.home / path if path is not None else None,
            render_s=run.render_s,
            score_s=run.score_s,
            created_at=utc(run.created_at),
            scores=scores,
        )


_VIEW_COLUMNS = (Run, Experiment.name, Image.path)


def _fts_phrase(needle: str) -> str:
    """``needle`` as one FTS5 phrase: a substring, whatever quotes or operators it holds."""
    return '"' + needle.replace('"', '""') + '"'


@dataclass
class _Tally:
    """One experiment's runs as the experiments list counts them."""

    runs: int = 0
    ok: int = 0
    failed: int = 0
    models: set[str] = field(default_factory=set)
    last: datetime | None = None

    def add(self, model: str, status: str, count: int, last: datetime) -> None:
        self.runs += count
        self.ok += count if status == "ok" else 0
        self.failed += count if status == "failed" else 0
        self.models.add(model)
        self.last = last if self.last is None else max(self.last, last)

