"""select: the class's training spectrograms, data/select/<CODE>.db (the seed's extract_by_image.py).

Reads the images you kept in data/curation/<CODE>/ (either naming scheme: plots or search results),
finds each one's recording and exact offset, and extracts those spectrograms again from the audio
with the current audio.* settings. Recordings that dedup left out are skipped, as are images naming
nothing in the class database; data/select/<CODE>.report.csv lists every skipped image and why.

With `select.auto_keep=true` (the demo) no hand work is needed: every search match within
`select.max_distance` is kept, and a class without search queries keeps all its spectrograms.

    python -m stages.select --code RIWH
"""

from __future__ import annotations

from pathlib import Path

from hawk.curation import build_db, images_in, resolve
from hawk.db import SpecDB
from hawk.dedup import read_exclude
from hawk.reports import write_skip_report
from hawk.search import read_matches
from stages._cli import class_stage, run, spec_settings


def main() -> None:
    cfg, spec = class_stage(__doc__)
    code = spec.code
    class_db = Path(cfg.paths.db) / f"{code}.db"
    with SpecDB(class_db) as db:
        stored = db.offsets()
    exclude = {f for c, f in read_exclude(Path(cfg.paths.dedup) / "exclude.csv") if c == code}
    if cfg.select.auto_keep:
        matches_csv = Path(cfg.paths.search) / code / "matches.csv"
        if cfg.search.queries.get(code):
            items = [(m["image"], m["file"], float(m["offset"])) for m in read_matches(matches_csv)
                     if float(m["distance"]) <= float(cfg.select.max_distance) and m["class"] in ("", code)]
            how = f"search matches within distance {cfg.select.max_distance}"
        else:
            items = [(f"{f}@{o}", f, o) for f, offs in stored.items() for o in offs]
            how = "all spectrograms (no search queries for this class)"
    else:
        folder = Path(cfg.paths.curation) / code
        items = images_in(folder)
        how = f"images in {folder}"
    picks = resolve(items, stored, exclude)
    out = Path(cfg.paths.select)
    res = build_db(out / f"{code}.db", picks.offsets, Path(cfg.paths.recordings) / code, class_db,
                   spec_settings(cfg), spec.name, code, str(cfg.extract.category), bool(cfg.select.progress))
    write_skip_report(out / f"{code}.report.csv", picks.skipped + res.skipped)
    print(f"{code}: {res.spectrograms} spectrograms from {res.recordings} recordings ({how}); "
          f"{len(picks.skipped) + len(res.skipped)} skipped, see {out / f'{code}.report.csv'}")


if __name__ == "__main__":
    run(main)
