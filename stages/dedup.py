"""dedup: find duplicate recordings within and across classes (the seed's find_dup_recordings.py).

Finds exact copies, re-encodes, resampled copies, gain changes and copies trimmed at either end, also
when filed under two classes. Writes data/dedup/duplicates.csv (kept recording, duplicate, distance,
reason) and data/dedup/exclude.csv, the recordings later stages leave out. `dedup.mode=report` (the
default) lists only; `dedup.mode=remove` (the seed's --mode 1) fills exclude.csv. Nothing is deleted:
set the mode back to report to undo.

    python -m stages.dedup [dedup.mode=remove dedup.max_distance=0.2 ...]
"""

from __future__ import annotations

from pathlib import Path

from hawk.dedup import FingerprintSettings, find_duplicates, load_recordings, summary_bands, write_exclude, write_report
from hawk.errors import HawkError
from stages._cli import class_list, load_config, parser, run, spec_settings

MODES = {"report": False, "remove": True, "0": False, "1": True}


def main() -> None:
    cfg = load_config(parser(__doc__).parse_args())
    d = cfg.dedup
    mode = str(d.mode)
    if mode not in MODES:
        raise HawkError(f"dedup.mode must be report or remove (got {mode!r})")
    db_dir, rec_dir = Path(cfg.paths.db), Path(cfg.paths.recordings)
    classes = [(c.code, db_dir / f"{c.code}.db", rec_dir / c.code) for c in class_list(cfg)]
    missing = [str(p) for _, p, _ in classes if not p.exists()]
    if missing:
        raise HawkError(f"no spectrogram database {', '.join(missing)}; run the extract stage first")
    fs = FingerprintSettings(int(d.bands), int(d.pool), float(d.summary_below))
    s = spec_settings(cfg)
    recs = load_recordings(classes, fs, bool(d.progress))
    dups = find_duplicates(recs, s.sample_rate / s.hop_length / fs.pool, float(d.max_distance), float(d.max_trim),
                           float(d.min_overlap), bool(d.progress), int(d.neighbours),
                           summary_bands(s.to_dict(), fs))
    out = Path(cfg.paths.dedup)
    write_report(out / "duplicates.csv", dups)
    write_exclude(out / "exclude.csv", dups if MODES[mode] else [])
    groups = len({x.group for x in dups})
    left_out = len(dups) if MODES[mode] else 0
    print(f"dedup: {len(recs)} recordings, {len(dups)} duplicates in {groups} groups; {left_out} left out "
          f"(mode {mode}); see {out / 'duplicates.csv'}")


if __name__ == "__main__":
    run(main)
