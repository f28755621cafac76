"""doubt: data/doubt/<CODE>/ for every class, the windows most worth your verdict, ranked, with the reason.

After train, every window of each class (kept for training by select, or dropped by curation) is
scored with the current model (models/ckpt: its embedding heads from the embed stage's vectors, its
CNNs from the stored spectrograms), and up to `doubt.size` windows are queued, the kinds in turn:
kept but scored low (by the out-of-fold keep score where the class is curated by the model), dropped
but scored high, another class scoring high, and the model's most uncertain (nearest
`doubt.boundary`). Windows you already judged (images in data/curation/<CODE>/restored/ or
rejected/) are never queued again. The folder holds one image per queued window and queue.csv
(rank, file, offset, reason, why, score, keep_score, other, other_score, kept, image).

Review it with `python -m stages.review --doubt CODE` (up yes, down no, left undo, right skip); the
next `dvc repro` retrains with your verdicts and queues the next round. BirdNET's weights (the
default embedder) are licensed CC BY-NC-SA 4.0 (non-commercial, share alike).

One stage for every class, not one per class: each retrain changes the model, which every queue
depends on, and one process loads it once.

    python -m stages.doubt [doubt.size=20]
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from hawk.classes import NOISE
from hawk.curation import verdicts
from hawk.db import SpecDB
from hawk.dedup import read_exclude
from hawk.doubt import DoubtSettings, candidates, rank_doubts, stored_spectrograms, write_queue
from hawk.embed.store import vectors_by_window
from hawk.infer import Ensemble
from hawk.settings import from_mapping
from hawk.spectrogram import decode_uint8
from hawk.window_score import read_scores
from stages._cli import class_list, load_config, parser, run, spec_settings

CHUNK = 512  # windows scored at a time: a class's spectrograms need not fit in memory


def main() -> None:
    cfg = load_config(parser(__doc__).parse_args())
    settings = from_mapping(DoubtSettings, OmegaConf.to_container(cfg.doubt, resolve=True), "doubt")
    ensemble = Ensemble.load(cfg.paths.ckpt, str(cfg.infer.device), str(cfg.infer.runtime))
    out = Path(cfg.paths.doubt)
    codes = [c.code for c in class_list(cfg)]
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.iterdir():
        if stale.is_dir() and stale.name not in codes:
            shutil.rmtree(stale)
    exclude = read_exclude(Path(cfg.paths.dedup) / "exclude.csv")
    for code in codes:
        print(queue_class(cfg, code, ensemble, settings, {f for c, f in exclude if c == code}), flush=True)


def queue_class(cfg: DictConfig, code: str, ensemble: Ensemble, settings: DoubtSettings, exclude: set[str]) -> str:
    """Write one class's queue; returns the line that says what it holds."""
    class_db, out = Path(cfg.paths.db) / f"{code}.db", Path(cfg.paths.doubt) / code
    audio = spec_settings(cfg)
    if code not in ensemble.codes:
        write_queue(out, [], [], audio)
        return f"{code}: not a class of the model in {cfg.paths.ckpt}; nothing queued (retrain first)"
    with SpecDB(class_db) as db:
        stored = db.offsets()
        ids = {(f, o): i for i, f, o in db.windows() if f not in exclude}
        same_audio = db.get_meta("spec_settings") == ensemble.settings.identity()
    with SpecDB(Path(cfg.paths.select) / f"{code}.db") as db:
        kept = {(f, o) for _, f, o in db.windows()}
    vectors = None
    if ensemble.heads:
        vectors, _ = vectors_by_window(class_db, Path(cfg.paths.embeddings) / f"{code}.npz")
        ids = {k: i for k, i in ids.items() if k in vectors}  # windows the embedder skipped cannot be scored
    use_cnn = bool(ensemble.models) and same_audio
    note = "" if use_cnn or not ensemble.models else \
        " (the CNNs were made with other audio settings than data/db: the heads alone scored it)"
    windows = sorted(ids)
    scores = np.zeros((len(windows), len(ensemble.codes)), np.float32)
    h, w = audio.spec_height, audio.spec_width
    with SpecDB(class_db) as db:
        for start in range(0, len(windows), CHUNK):
            part = windows[start : start + CHUNK]
            specs = None
            if use_cnn:
                rows = db.spectrograms_by_id(ids[k] for k in part)
                specs = np.stack([decode_uint8(rows[ids[k]].value, h, w) for k in part])
            vec = np.stack([vectors[k] for k in part]) if vectors is not None else None
            scores[start : start + len(part)] = ensemble.stored_scores(specs, vec, int(cfg.infer.batch_size))
    restored, rejected = verdicts(Path(cfg.paths.curation) / code, stored, exclude)
    judged = restored.windows() | rejected.windows()
    score_file = Path(cfg.paths.score) / f"{code}.csv"
    keep = read_scores(score_file) if score_file.is_file() else {}
    cands = candidates(scores, windows, ensemble.codes, code, kept, keep)
    doubts = rank_doubts(cands, code, settings, judged, [NOISE])
    write_queue(out, doubts, stored_spectrograms(class_db, [(d.window.file, d.window.offset) for d in doubts],
                                                 audio), audio)
    kinds = Counter(d.reason for d in doubts)
    return (f"{code}: {len(doubts)} windows queued in {out} ({', '.join(f'{k} {n}' for k, n in kinds.items())}) "
            f"of {len(windows)} scored, {len(judged)} already judged{note}; "
            f"review: python -m stages.review --doubt {code}")


if __name__ == "__main__":
    run(main)
