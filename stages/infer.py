"""infer: label recordings with the ensemble of every checkpoint in models/ckpt/ (the seed's analyze.py).

Writes, for each recording, an Audacity label file <stem>_<suffix>.txt (start, end, CODE;score) and a
Raven selection table, plus labels.csv for the whole run and summary.txt; recordings that cannot be
read are listed in skipped.csv. labels.csv grows as recordings are added to infer.input: rows of a
later run's recordings come after the earlier ones (hawk/resume.py). Checkpoints trained on different
class lists are refused.

infer.input is a recording, a folder (searched recursively), a glob ('/data/ARU/**/*.wav') or a CSV
file list (a `path` column). Each recording's labels are written as soon as it is scored, so a rerun
resumes: recordings already labelled with the same checkpoints and settings are skipped
(infer.resume=false scores everything). engine=ray spreads the work over a Ray cluster (README,
"Running on a cluster").

    python -m stages.infer                                   # infer.input (the demo: test soundscapes)
    python -m stages.infer infer.input=/data/ARU infer.min_score=0.7 infer.overlap=0 paths.labels=out/
    python -m stages.infer engine=ray engine.address=auto infer.input=/data/ARU paths.labels=out/
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from hawk.fsutil import atomic_open
from hawk.infer import Ensemble, FileScores, find_recordings, iter_scores, recordings_root
from hawk.labels import make_labels, write_audacity, write_raven
from hawk.progress import progress_bar
from hawk.reports import write_skip_report
from hawk.resume import LabelRecords, run_key
from stages._cli import engine, load_config, parser, run


def main() -> None:
    start = time.perf_counter()
    cfg = load_config(parser(__doc__).parse_args())
    c = cfg.infer
    ensemble = Ensemble.load(cfg.paths.ckpt, str(c.device), str(c.runtime))
    files = find_recordings(c.input)
    root = recordings_root(c.input, files)
    rel = {f: f.relative_to(root) if f.is_relative_to(root) else Path(f.name) for f in files}
    out = Path(cfg.paths.labels)
    out.mkdir(parents=True, exist_ok=True)
    options = OmegaConf.to_container(c, resolve=True)
    label_settings = {k: options[k] for k in ("overlap", "calibration", "min_score", "merge", "ignore", "suffix", "raven")}
    with LabelRecords(out, run_key(ensemble.paths, label_settings), int(c.commit_every)) as records:
        _label(cfg, ensemble, files, rel, out, records, start)


def _label(cfg: Any, ensemble: Ensemble, files: list[Path], rel: dict[Path, Path], out: Path, records: LabelRecords,
           start: float) -> None:
    c = cfg.infer
    records.keep_only(str(rel[f]) for f in files)  # a removed input's label files go below; its record too
    finished = records.finished() if c.resume else {}
    done = {f: finished[str(rel[f])] for f in files if str(rel[f]) in finished}  # audio seconds
    todo = [f for f in files if f not in done]
    keep = {out / rel[f].parent / name for f in done for name in (f"{f.stem}_{c.suffix}.txt", f"{f.stem}.selections.txt")}
    for old in list(out.rglob("*")):  # one pass: label files of recordings to redo or gone, writes a kill left half done
        stale = old.name.endswith((f"_{c.suffix}.txt", ".selections.txt")) and old not in keep
        if stale or (old.name.startswith(".") and old.name.endswith(".part")):
            old.unlink()
    records.forget(rel[f] for f in todo)

    s = ensemble.settings
    skipped: list[tuple[str, str]] = []
    scoring = time.perf_counter()
    resumed_seconds = sum(done.values())
    hours = resumed_seconds / 3600
    scored: set[Path] = set()
    first: float | None = None  # seconds from the start to the first recording labelled
    with progress_bar(len(files), "infer", bool(c.progress)) as bar, engine(cfg) as eng:
        bar.update(len(done))
        for res in iter_scores(todo, ensemble, float(c.overlap), (float(c.calibration.a), float(c.calibration.b)),
                               int(c.batch_size), int(c.prefetch), eng):
            if isinstance(res, FileScores):
                labels = make_labels(res.offsets, res.scores, ensemble.classes, s.segment_len, float(c.min_score),
                                     bool(c.merge), list(c.ignore), res.seconds)
                r = rel[res.path]
                write_audacity(out / r.parent / f"{res.path.stem}_{c.suffix}.txt", labels, durable=False)
                if c.raven:
                    write_raven(out / r.parent / f"{res.path.stem}.selections.txt", labels, s.min_freq, s.max_freq,
                                durable=False)
                records.write(r, res.seconds, labels)  # after them: a committed record means complete label files
                scored.add(res.path)
                first = first if first is not None else time.perf_counter() - start
                hours += res.seconds / 3600
            else:
                skipped.append(res)
            bar.update()
            bar.set_postfix_str(f"{hours:.2f} h audio")
    scoring = time.perf_counter() - scoring
    records.flush()

    records.append_csv(out / "labels.csv", (rel[f] for f in files))
    n_recordings, audio, per_class = records.totals()
    write_skip_report(out / "skipped.csv", skipped)
    wall = time.perf_counter() - start
    scored_audio = audio - resumed_seconds
    summary = [
        f"{n_recordings} recordings ({audio / 60:.1f} min of audio), {len(skipped)} skipped, "
        f"{sum(per_class.values())} labels; {len(scored)} scored now, {len(done)} resumed from an earlier run",
        f"ensemble of {ensemble.members} checkpoint(s) from {cfg.paths.ckpt}, {len(ensemble.classes)} classes, "
        f"engine {cfg.engine.name}" + (f", CNNs on {', '.join(dict.fromkeys(ensemble.runtimes))}" if ensemble.runtimes else ""),
        f"min_score {c.min_score}, overlap {c.overlap} s, merge {c.merge}, ignoring {', '.join(c.ignore)}",
        (f"{scoring:.1f} s scoring, {wall:.1f} s in all: {scored_audio / max(scoring, 1e-9):.0f}x real time "
         f"({scored_audio / max(wall, 1e-9):.0f}x with start-up); first recording labelled {first:.1f} s after the start")
        if scored_audio and first is not None else f"nothing to score, {wall:.1f} s",
        "labels per class: " + (", ".join(f"{k} {v}" for k, v in sorted(per_class.items())) or "none"),
    ]
    with atomic_open(out / "summary.txt", "w", encoding="utf-8") as fh:
        fh.write("\n".join(summary) + "\n")
    print("infer: " + "\n       ".join(summary))


if __name__ == "__main__":
    run(main)
