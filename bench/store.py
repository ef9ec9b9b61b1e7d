"""Store at scale: 100,000 synthetic runs with scores in a fresh SQLite store, then the median
time of each query the dashboard makes.

    .venv/bin/python bench/store.py [--runs 100000] [--experiments 50] [--record-runs 500]

Rows go in through the store's own tables with SQLAlchemy core (one transaction per
experiment); ``record_run`` (one transaction and one PNG file per run, as the runner writes)
is timed separately on ``--record-runs`` runs of a new experiment in the same store.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine, median, note, temp_home  # noqa: E402

ROOT = temp_home("store")

SUBJECTS = ["fat cat lies on the couch", "a lighthouse at dusk", "portrait of an old fisherman", "a red fox in snow",
            "a cyberpunk street market", "a bowl of ramen", "a castle on a cliff", "a squirrel eating a nut"]
STYLES = ["pop-art", "art nouveau", "steampunk", "ukiyo-e", "impressionism"]
LIGHTS = ["cinematic lighting", "golden hour", "soft light", "rim light"]
ARTISTS = ["Alphonse Mucha", "Greg Rutkowski", "Hokusai", "Claude Monet", "Moebius"]
MEDIA = ["oil painting", "watercolor", "digital art", "35mm photo"]
NEGATIVE = "blurry, lowres, bad anatomy, watermark, text"
SCHEDULER_CONFIG = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
                    "num_train_timesteps": 1000, "steps_offset": 1, "timestep_spacing": "leading"}  # fmt: skip


def bulk_insert(store, n_runs: int, n_experiments: int) -> tuple[str, int]:  # type: ignore[no-untyped-def]
    """Insert ``n_runs`` runs (2 scores and 4 terms each) over ``n_experiments``; the first experiment's name and size."""
    from promptlab.store import Experiment, Image, Run, RunTerm, Score

    rng = random.Random(0)
    per = n_runs // n_experiments
    seeds = 20
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    run_id = 0
    with store.engine.begin() as conn:
        conn.execute(Experiment.__table__.insert(), [
            {"id": e + 1, "name": f"exp-{e:02d}", "spec": {"name": f"exp-{e:02d}", "seeds": seeds},
             "subject": SUBJECTS[e % len(SUBJECTS)], "intent": SUBJECTS[e % len(SUBJECTS)],
             "created_at": start + timedelta(days=e)} for e in range(n_experiments)
        ])  # fmt: skip
    for e in range(n_experiments):
        subject = SUBJECTS[e % len(SUBJECTS)]
        medium = MEDIA[e % len(MEDIA)]
        runs, scores, terms, images = [], [], [], []
        for i in range(per):
            run_id += 1
            variant, seed = divmod(i, seeds)
            style = STYLES[variant % 5]
            light = LIGHTS[(variant // 5) % 4]
            artist = ARTISTS[(variant // 20) % 5]
            plain = f"{subject}, {medium}, {style}, {light}, by {artist}"
            sha = f"{run_id:064x}"
            created = start + timedelta(days=e, seconds=i)
            runs.append({
                "id": run_id, "experiment_id": e + 1, "variant_key": f"{e:02d}-{variant:04d}",
                "label": f"style={style}, light={light}, artist={artist}", "seed": seed + 1,
                "prompt": f"{subject}, {medium}, {style}, ({light})1.2, by {artist}",
                "prompt_a1111": f"{subject}, {medium}, {style}, ({light}:1.2), by {artist}", "prompt_plain": plain,
                "subject": subject, "intent": subject, "negative_prompt": NEGATIVE, "model": "tiny-sd",
                "task": "txt2img", "num_inference_steps": 20, "guidance_scale": 7.5, "width": 512, "height": 512,
                "scheduler": "euler_a",
                "params": {"long_prompt": "truncate", "scheduler_config": SCHEDULER_CONFIG, "dtype": "float16"},
                "axes": {"style": style, "light": f"{light}:1.2", "artist": artist},
                "terms": [{"text": t, "weight": w, "category": c} for t, w, c in
                          ((medium, 1.0, "medium"), (style, 1.0, "style"), (light, 1.2, "light"), (artist, 1.0, "artist"))],
                "status": "ok", "render_s": 0.5, "score_s": 0.01, "created_at": created, "image_sha256": sha,
            })  # fmt: skip
            images.append({"sha256": sha, "path": f"images/{sha}.png", "width": 512, "height": 512,
                           "size_bytes": 400_000, "created_at": created})  # fmt: skip
            for kind, text in (("intent", subject), ("prompt", plain)):
                scores.append({"run_id": run_id, "kind": kind, "scorer": "clip", "model": "ViT-B-32",
                               "pretrained": "openai", "text": text, "value": 20 + 10 * rng.random()})  # fmt: skip
            for position, term in enumerate(runs[-1]["terms"]):
                terms.append({"run_id": run_id, "position": position, "category": term["category"],
                              "text": term["text"], "weight": term["weight"]})  # fmt: skip
        with store.engine.begin() as conn:
            conn.execute(Image.__table__.insert(), images)
            conn.execute(Run.__table__.insert(), runs)
            conn.execute(Score.__table__.insert(), scores)
            conn.execute(RunTerm.__table__.insert(), terms)
    return "exp-00", per


def time_record_run(store, count: int) -> float:  # type: ignore[no-untyped-def]
    """Seconds for ``count`` ``record_run`` calls (PIL image -> ``run_png`` -> PNG file + rows), as the runner makes them."""
    import numpy as np
    from PIL import Image as PILImage

    from promptlab.metadata import run_png
    from promptlab.prompt import Prompt, Term
    from promptlab.store import RunRecord, ScoreRecord

    experiment = store.get_or_create_experiment("record-run", {"name": "record-run"}, None, subject="a cat")
    rng = np.random.default_rng(0)
    images = [PILImage.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(count)]
    started = time.perf_counter()
    for i, image in enumerate(images):
        prompt = Prompt("a cat", (Term(STYLES[i % 5], 1.0, "style"), Term(LIGHTS[i % 4], 1.2, "light")))
        record = RunRecord(experiment.id, f"v{i // 4}", i % 4 + 1, prompt, "tiny-sd", NEGATIVE,
                           params={"num_inference_steps": 4, "width": 64, "height": 64}, label=f"v{i // 4}")  # fmt: skip
        scores = [ScoreRecord("intent", "tiny-clip", 25.0, "a cat"), ScoreRecord("prompt", "tiny-clip", 24.0, "a cat")]
        store.record_run(record, run_png(record, image, scores, "record-run"), scores)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--experiments", type=int, default=50)
    parser.add_argument("--record-runs", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    from promptlab.analysis import best_prompts, effects_table
    from promptlab.store import open_store

    store = open_store(f"sqlite:///{ROOT / 'home' / 'promptlab.db'}")
    started = time.perf_counter()
    name, per = bulk_insert(store, args.runs, args.experiments)
    bulk_s = time.perf_counter() - started
    note(f"bulk insert of {args.runs} runs: {bulk_s:.1f}s")
    total = store.count_runs()
    assert total == args.runs, total

    frame = store.runs_frame(name)
    queries = {
        "experiments_list": lambda: store.list_experiments(),
        "grid_runs_frame": lambda: store.runs_frame(name),
        "grid_paged_list": lambda: store.list_runs(experiment=name, limit=50, offset=1000),
        "term_effects": lambda: effects_table(frame),
        "best_prompts": lambda: best_prompts(frame),
        "text_search": lambda: (store.list_runs(search="golden hour", limit=50), store.count_runs(search="golden hour")),
        "text_search_rare": lambda: (store.list_runs(search="Moebius", experiment=name, limit=50),
                                     store.count_runs(search="Moebius", experiment=name)),  # fmt: skip
        "history_first_page": lambda: (store.list_runs(limit=50), store.count_runs()),
        "history_deep_page": lambda: (store.list_runs(limit=50, offset=50_000), store.count_runs()),
    }
    for query in queries.values():
        query()
    samples: dict[str, list[float]] = {key: [] for key in queries}
    # Alternated rounds, so a noisy neighbour spreads over every query alike.
    for _ in range(args.repeats):
        for key, query in queries.items():
            t = time.perf_counter()
            query()
            samples[key].append((time.perf_counter() - t) * 1000)
    query_ms = {key: round(median(values), 1) for key, values in samples.items()}
    record_s = time_record_run(store, args.record_runs)
    emit(
        {
            "runs": args.runs,
            "experiments": args.experiments,
            "runs_in_grid_experiment": per,
            "inserts_per_s_bulk": round(args.runs / bulk_s),
            "inserts_per_s_record_run": round(args.record_runs / record_s, 1),
            "query_ms": query_ms,
            "over_200ms": sorted(k for k, v in query_ms.items() if v >= 200),
            "repeats": args.repeats,
            "machine": machine(),
        }
    )


if __name__ == "__main__":
    main()
