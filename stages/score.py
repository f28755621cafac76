"""score: data/score/<CODE>.csv, how likely each window of each class is to hold its class.

Curation by the model (hawk/window_score.py): every window's embedding (embed stage, BirdNET by
default) goes into a linear probe trained on folds grouped by recording and duplicate group, so each
window is scored by a model that never heard its recording; in a second round the windows that scored
low are taught as background and everything is scored again. Each window's *keep score* is its
own-class probability as a share of own plus Noise's, divided by its recording's 75th percentile of
that share and capped at 1 (a recording's background lowers all its windows alike; its pauses still
stand out). select then keeps, for each class with no search queries and no kept images, the
windows whose keep score is at least `select.unattended.min_score`.
Runs only when some class is curated by the model (otherwise it writes empty files). BirdNET's weights
are licensed CC BY-NC-SA 4.0 (non-commercial, share alike).

Each file: file, offset, score (own-class probability), relative (the keep score),
other (the other class scoring highest), other_score.

    python -m stages.score [score.folds=5 score.rounds=2 ...]
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from hawk.classes import NOISE
from hawk.dedup import read_exclude, read_groups
from hawk.embed.store import check_same_embedder, vectors_by_window
from hawk.settings import from_mapping
from hawk.window_score import ScoreSettings, Window, groups_of, keep_scores, out_of_fold, write_scores
from stages._cli import class_list, curated_by_model, load_config, parser, run


def main() -> None:
    cfg = load_config(parser(__doc__).parse_args())
    start = time.perf_counter()
    codes = [c.code for c in class_list(cfg)]
    out = Path(cfg.paths.score)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.csv"):
        if stale.stem not in codes:
            stale.unlink()
    if not curated_by_model(cfg):
        for code in codes:
            write_scores(out / f"{code}.csv", [], np.zeros((0, len(codes))), np.zeros(0), codes)
        print("score: no class is curated by the model (each has search queries or is kept whole, or "
              "select.unattended.by is not model); wrote empty files")
        return
    settings = from_mapping(ScoreSettings, OmegaConf.to_container(cfg.score, resolve=True), "score")
    exclude = read_exclude(Path(cfg.paths.dedup) / "exclude.csv")
    windows, vectors, labels, idents = [], [], [], {}
    for ci, code in enumerate(codes):
        emb_path = Path(cfg.paths.embeddings) / f"{code}.npz"
        vec, idents[str(emb_path)] = vectors_by_window(Path(cfg.paths.db) / f"{code}.db", emb_path)
        for (file, offset), v in vec.items():
            if (code, file) not in exclude:
                windows.append(Window(code, file, offset))
                vectors.append(v)
                labels.append(ci)
    check_same_embedder(idents)
    keep_all = set(cfg.select.unattended.keep_all)
    labels_arr = np.array(labels)
    relabel = np.array([w.code not in keep_all for w in windows])
    recordings = [f"{w.code}/{w.file}" for w in windows]
    background = codes.index(NOISE) if NOISE in codes else None
    probs = out_of_fold(np.stack(vectors), labels_arr, groups_of(windows, read_groups(Path(cfg.paths.dedup) /
                        "duplicates.csv")), len(codes), settings, background, relabel, recordings)
    threshold = float(cfg.select.unattended.min_score)
    keep = keep_scores(probs, labels_arr, recordings, background, settings.recording_quantile)
    for ci, code in enumerate(codes):
        mine = labels_arr == ci
        write_scores(out / f"{code}.csv", [w for w, m in zip(windows, mine) if m], probs[mine], keep[mine], codes)
        low = int((keep[mine] < threshold).sum())
        note = " (kept whole)" if code in keep_all else f", {low} below {threshold}"
        print(f"{code}: {int(mine.sum())} windows scored, median keep score "
              f"{np.median(keep[mine]) if mine.any() else 0:.2f}{note}")
    print(f"score: {len(windows)} windows of {len(codes)} classes, {settings.folds} folds, {settings.rounds} "
          f"rounds in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    run(main)
