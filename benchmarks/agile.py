"""The agile loop measured with a simulated reviewer: does a person's time spent on the doubt queue
buy more than the same time spent on random windows or on the seed's search-and-delete?

Builds the realistic kit and its project as benchmarks/quality.py does and runs `dvc repro` (round 0,
the defaults). Then, from that same state, each way of spending a budget of verdicts runs 3 rounds;
in each, every bird class gets `--budget` verdicts (Noise and Other are kept whole), then `dvc repro`
retrains and the per-sound macro AP on the kit's test soundscapes is read:
- doubt: the first windows of data/doubt/<CODE>/queue.csv, answered on the review page's own code path
  (hawk.review.QueueFolder: up yes, down no);
- field: the first windows of data/field_queue/<CODE>/queue.csv, the model's questions about "your own
  recordings": the kit's field soundscapes (like the test ones, other seeds, never scored; the
  project's infer.input in every arm), answered on the page's code path (hawk.review.FieldQueueFolder:
  a yes becomes a training clip of the class);
- random: windows drawn at random from the class's candidates, answered yes or no alike;
- search: the seed's search-and-delete: the windows nearest (BirdNET cosine) to the class's best
  kept window, the query a person would pick, where the person only deletes (rejects) the bad ones.
The reviewer answers from the kit's truth: yes when the 3-s window holds a call of its class (for
field windows, the field soundscapes' annotations).

    python benchmarks/agile.py [--work /tmp/hawk-agile] [--budget 20] [--rounds 3] [--design recorded --seed 0]
                               [--set experiment=cnn ...]

The result goes to benchmarks/results/<name>.json. A benchmark, run by hand (30-60 min on 2 cores).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from kit import add_kit_arguments, field_recordings, kit_from  # noqa: E402
from quality import _calls, _holds, project, selection_quality, sh  # noqa: E402
from results import commit, record  # noqa: E402

ARMS = ("doubt", "field", "random", "search")
WHOLE = ("Noise", "Other")


def per_sound_ap(repo: Path) -> float:
    return json.loads((repo / "metrics" / "test.json").read_text())["annotated"]["macro_ap"]


def candidates(repo: Path, code: str) -> list[tuple[str, float]]:
    """The class's windows select may train on: its database less what dedup left out."""
    from hawk.db import SpecDB
    from hawk.dedup import read_exclude

    exclude = {f for c, f in read_exclude(repo / "data" / "dedup" / "exclude.csv") if c == code}
    with SpecDB(repo / "data" / "db" / f"{code}.db") as db:
        return [(f, o) for _, f, o in db.windows() if f not in exclude]


def already_judged(repo: Path, code: str) -> set[tuple[str, float]]:
    from hawk.curation import verdicts
    from hawk.db import SpecDB

    with SpecDB(repo / "data" / "db" / f"{code}.db") as db:
        stored = db.offsets()
    restored, rejected = verdicts(repo / "data" / "curation" / code, stored)
    return restored.windows() | rejected.windows()


def nearest_to_best(repo: Path, code: str, pool: list[tuple[str, float]], n: int) -> list[tuple[str, float]]:
    """The seed's search: the windows most like the class's best kept window (its top keep score)."""
    from hawk.embed.store import vectors_by_window
    from hawk.window_score import read_scores

    vec, _ = vectors_by_window(repo / "data" / "db" / f"{code}.db", repo / "data" / "embed" / f"{code}.npz")
    scores = read_scores(repo / "data" / "score" / f"{code}.csv")
    best = max((k for k in pool if k in vec), key=lambda k: scores.get(k[0], {}).get(k[1], 0.0))
    q = vec[best] / np.linalg.norm(vec[best])
    near = sorted((k for k in pool if k in vec and k != best),
                  key=lambda k: -float(vec[k] @ q / max(np.linalg.norm(vec[k]), 1e-9)))
    return near[:n]


def write_verdicts(repo: Path, code: str, answers: list[tuple[str, float, bool]], deletes_only: bool) -> None:
    """Verdicts as the review page stores them: a copy of the window's image in restored/ (yes) or
    rejected/ (no) of the class's curation folder."""
    from hawk.curation import REJECTED, RESTORED
    from hawk.doubt import stored_spectrograms
    from hawk.plot import SpecRenderer, image_name
    from hawk.spectrogram import SpecSettings

    settings = SpecSettings.from_mapping(yaml.safe_load((repo / "params.yaml").read_text())["audio"])
    renderer = SpecRenderer(settings)
    want = {(f, o): yes for f, o, yes in answers if not (deletes_only and yes)}
    folder = repo / "data" / "curation" / code
    for (f, o), spec in stored_spectrograms(repo / "data" / "db" / f"{code}.db", want, settings):
        to = folder / (RESTORED if want[(f, o)] else REJECTED)
        to.mkdir(parents=True, exist_ok=True)
        renderer.save(spec, to / image_name(f, o))


def field_calls(annotations: Path) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """(recording stem, class) -> its annotated sounds, for the reviewer of field windows."""
    calls = defaultdict(list)
    with open(annotations, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            calls[(r["recording"], r["species"])].append((float(r["start_time"]), float(r["end_time"])))
    return calls


def review_round(repo: Path, arm: str, codes: list[str], calls: dict, budget: int,
                 rng: np.random.Generator, field: Path) -> dict[str, int]:
    """One round of ``budget`` verdicts per class; returns how many were yes and no."""
    from hawk.doubt import read_queue
    from hawk.review import FieldQueueFolder, QueueFolder

    said = {"yes": 0, "no": 0}
    if arm == "field":
        audio = yaml.safe_load((repo / "params.yaml").read_text())["audio"]
        truth = field_calls(field.parent / "annotations.csv")
    for code in codes:
        if arm == "field":
            folder = FieldQueueFolder(f"{code}-field", repo / "data" / "field_queue" / code,
                                      repo / "data" / "field" / code, field, int(audio["sample_rate"]),
                                      float(audio["segment_len"]))
            for row in read_queue(folder.path)[:budget]:
                yes = _holds(truth.get((Path(row["file"]).stem, code), []), float(row["offset"]))
                folder.move(row["image"], "kept" if yes else "rejected")
                said["yes" if yes else "no"] += 1
            continue
        if arm == "doubt":
            folder = QueueFolder(f"{code}-doubt", repo / "data" / "doubt" / code, repo / "data" / "curation" / code,
                                 repo / "data" / "recordings" / code)
            for row in read_queue(folder.path)[:budget]:
                yes = _holds(calls[row["file"]], float(row["offset"]))
                folder.move(row["image"], "kept" if yes else "rejected")
                said["yes" if yes else "no"] += 1
            continue
        done = already_judged(repo, code)
        pool = [k for k in candidates(repo, code) if k not in done]
        if arm == "random":
            pick = [pool[i] for i in rng.choice(len(pool), min(budget, len(pool)), replace=False)]
        else:
            pick = nearest_to_best(repo, code, pool, budget)
        answers = [(f, o, _holds(calls[f], o)) for f, o in pick]
        write_verdicts(repo, code, answers, deletes_only=arm == "search")
        for *_, yes in answers:
            said["yes" if yes else "no"] += 1
    return said


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=Path("/tmp/hawk-agile"))
    p.add_argument("--budget", type=int, default=20, help="verdicts per class and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    p.add_argument("--set", dest="overrides", action="append", default=[], help="a Hydra override (repeatable)")
    p.add_argument("--name", default="agile-kit", help="benchmarks/results/<name>.json")
    add_kit_arguments(p)
    args = p.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    kit = kit_from(work, args)
    calls = _calls(kit / "truth.csv")
    field = field_recordings(kit, args.soundscapes, args.seed, args.design, args.sounds.expanduser().resolve())
    at = commit()
    base = project(work, kit, [f"infer.input={field}", *args.overrides])
    start = time.perf_counter()
    sh(base, "dvc", "repro", stream=True)
    first = {"per_sound_ap": per_sound_ap(base), "seconds": round(time.perf_counter() - start),
             "selection": selection_quality(base, kit / "truth.csv")}
    print(f"round 0: per-sound macro AP {first['per_sound_ap']:.3f} ({first['seconds']} s)", flush=True)
    sh(base, "git", "add", "-A")
    sh(base, "git", "commit", "-qm", "round 0")
    codes = [p.stem for p in sorted((base / "data" / "db").glob("*.db")) if p.stem not in WHOLE]
    arms = {}
    for arm in args.arms:
        repo = work / arm
        shutil.rmtree(repo, ignore_errors=True)
        shutil.copytree(base, repo, symlinks=True)
        rng = np.random.default_rng(args.seed)
        rounds = []
        for r in range(1, args.rounds + 1):
            said = review_round(repo, arm, codes, calls, args.budget, rng, field)
            start = time.perf_counter()
            _, times = sh(repo, "dvc", "repro")
            row = {"round": r, "per_sound_ap": per_sound_ap(repo), "seconds": round(time.perf_counter() - start),
                   "stage_seconds": {k: round(v) for k, v in times.items()}, **said,
                   "selection": selection_quality(repo, kit / "truth.csv")}
            rounds.append(row)
            print(f"{arm} round {r}: per-sound macro AP {row['per_sound_ap']:.3f} ({row['seconds']} s; "
                  f"{said['yes']} yes, {said['no']} no)", flush=True)
        arms[arm] = rounds
        shutil.rmtree(repo, ignore_errors=True)
    result = {"overrides": args.overrides, "kit": kit.name, "kit_seed": args.seed, "budget_per_class": args.budget,
              "classes_reviewed": len(codes), "round0": first, "arms": arms}
    print(json.dumps(result, indent=2))
    record(args.name, f"The agile loop with a simulated reviewer ({args.budget} verdicts per class and round)",
           result, command=" ".join(["python benchmarks/agile.py", f"--design {args.design} --seed {args.seed}",
                                     f"--budget {args.budget} --rounds {args.rounds}",
                                     *("--set " + o for o in args.overrides)]), at=at)


if __name__ == "__main__":
    main()
