"""infer: label recordings with the ensemble of every checkpoint in models/ckpt/ (the seed's analyze.py).

Writes, for each recording, an Audacity label file <stem>_<suffix>.txt (start, end, CODE;score) and a
Raven selection table, plus labels.csv for the whole run and summary.txt; recordings that cannot be
read are listed in skipped.csv. Checkpoints trained on different class lists are refused.

    python -m stages.infer                                   # infer.input (the demo: test soundscapes)
    python -m stages.infer infer.input=/data/ARU infer.min_score=0.7 infer.overlap=0 paths.labels=out/
"""

from __future__ import annotations

import time
from pathlib import Path

from hawk.fsutil import atomic_open
from hawk.infer import Ensemble, find_recordings, score_files
from hawk.labels import make_labels, write_audacity, write_raven, write_run_csv
from hawk.progress import progress_bar
from hawk.reports import write_skip_report
from stages._cli import load_config, parser, run


def main() -> None:
    start = time.perf_counter()
    cfg = load_config(parser(__doc__).parse_args())
    c = cfg.infer
    ensemble = Ensemble.load(cfg.paths.ckpt, str(c.device))
    files = find_recordings(c.input)
    out = Path(cfg.paths.labels)
    out.mkdir(parents=True, exist_ok=True)
    for old in list(out.rglob(f"*_{c.suffix}.txt")) + list(out.rglob("*.selections.txt")):
        old.unlink()
    root = Path(c.input) if Path(c.input).is_dir() else Path(c.input).parent
    with progress_bar(len(files), "infer", bool(c.progress)) as bar:
        run = score_files(files, ensemble, float(c.overlap), (float(c.calibration.a), float(c.calibration.b)),
                          int(c.batch_size), int(c.prefetch), bar)
    rows = []
    per_class: dict[str, int] = {}
    s = ensemble.settings
    for f in run.files:
        labels = make_labels(f.offsets, f.scores, ensemble.classes, s.segment_len, float(c.min_score), bool(c.merge),
                             list(c.ignore), f.seconds)
        rel = f.path.relative_to(root) if f.path.is_relative_to(root) else Path(f.path.name)
        dest = out / rel.parent
        write_audacity(dest / f"{f.path.stem}_{c.suffix}.txt", labels)
        if c.raven:
            write_raven(dest / f"{f.path.stem}.selections.txt", labels, s.min_freq, s.max_freq)
        rows += [(str(rel), lb) for lb in labels]
        for lb in labels:
            per_class[lb.code] = per_class.get(lb.code, 0) + 1
    write_run_csv(out / "labels.csv", rows)
    write_skip_report(out / "skipped.csv", [(str(p), r) for p, r in run.skipped])
    audio = run.audio_seconds
    wall = time.perf_counter() - start
    summary = [
        f"{len(run.files)} recordings ({audio / 60:.1f} min of audio), {len(run.skipped)} skipped, {len(rows)} labels",
        f"ensemble of {len(ensemble.models)} checkpoint(s) from {cfg.paths.ckpt}, {len(ensemble.classes)} classes",
        f"min_score {c.min_score}, overlap {c.overlap} s, merge {c.merge}, ignoring {', '.join(c.ignore)}",
        f"{run.seconds:.1f} s scoring, {wall:.1f} s in all: {audio / max(run.seconds, 1e-9):.0f}x real time "
        f"({audio / max(wall, 1e-9):.0f}x with start-up)",
        "labels per class: " + (", ".join(f"{k} {v}" for k, v in sorted(per_class.items())) or "none"),
    ]
    with atomic_open(out / "summary.txt", "w", encoding="utf-8") as fh:
        fh.write("\n".join(summary) + "\n")
    print("infer: " + "\n       ".join(summary))


if __name__ == "__main__":
    run(main)
