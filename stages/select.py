"""select: the class's training spectrograms, data/select/<CODE>.db (the seed's extract_by_image.py).

Per class, the first rule that applies (see conf/select/default.yaml):
1. `select.auto_keep=true` and search queries: every match within `select.max_distance` (the demo);
2. images in data/curation/<CODE>/ (either naming scheme: plots or search results), or queries
   without auto_keep: the images you kept;
3. unattended curation (Noise and Other keep everything): with `select.unattended.by=model` (the
   default) every window whose out-of-fold score for its own class (the score stage) is at least
   `select.unattended.min_score` of its best class's; with `by=activity` every segment whose loudest sound stands
   `select.unattended.min_activity_db` above its recording's own background, as extract measured it.
   What it drops is drawn in data/dropped/<CODE>/ with dropped.csv; images you put in
   data/curation/<CODE>/restored/ (the review page's `r` key) are kept whatever their value, and stay
   drawn there (dropped.csv's restored column is 1), so the review page can un-restore them.
Under every rule your verdicts on single windows win: a window whose image is in
data/curation/<CODE>/restored/ is kept, one in data/curation/<CODE>/rejected/ never is (the review
page writes both: `x` on a curation image, `r` on a drop, up and down in the doubt queue of
`python -m stages.review --doubt CODE`). (The clips you confirm in your own recordings join the
training set at pickle.)
Each kept spectrogram is copied from the class database, or extracted again from the audio at its
exact offset when the audio.* settings have changed since extract.
Recordings that dedup left out are skipped, as are images naming nothing in the class
database; data/select/<CODE>.report.csv lists every skipped input and why.

    python -m stages.select --code RIWH
"""

from __future__ import annotations

from pathlib import Path

from hawk.curation import ThresholdFilter, build_db, images_in, resolve, verdicts
from hawk.db import SpecDB
from hawk.dedup import read_exclude
from hawk.plot import write_dropped
from hawk.reports import write_skip_report
from hawk.search import read_matches
from hawk.window_score import read_scores
from stages._cli import class_stage, run, spec_settings


def main() -> None:
    cfg, spec = class_stage(__doc__)
    code, sel = spec.code, cfg.select
    un = sel.unattended
    by_model = un.by == "model"
    class_db = Path(cfg.paths.db) / f"{code}.db"
    rec_dir = Path(cfg.paths.recordings) / code
    settings = spec_settings(cfg)
    with SpecDB(class_db) as db:
        stored, measured = db.offsets(), db.activity()
    exclude = {f for c, f in read_exclude(Path(cfg.paths.dedup) / "exclude.csv") if c == code}
    folder = Path(cfg.paths.curation) / code
    queries, kept_images = cfg.search.queries.get(code), images_in(folder)
    restored, rejected = verdicts(folder, stored, exclude)  # a person's yes and no on single windows
    values, minimum = {}, 0.0  # no values: the chooser applies only the person's verdicts
    if sel.auto_keep and queries:
        items = [(m["image"], m["file"], float(m["offset"])) for m in read_matches(Path(cfg.paths.search) / code /
                 "matches.csv") if float(m["distance"]) <= float(sel.max_distance) and m["class"] in ("", code)]
        picks, how = resolve(items, stored, exclude), f"search matches within distance {sel.max_distance}"
    elif kept_images or queries:
        picks, how = resolve(kept_images, stored, exclude), f"images in {folder}"
    else:
        picks, how = resolve([(f"{f}@{o}", f, o) for f, offs in stored.items() for o in offs], stored,
                             exclude), "all spectrograms"
        if sel.unattended.enabled and code not in sel.unattended.keep_all:
            if by_model:
                values, minimum = read_scores(Path(cfg.paths.score) / f"{code}.csv"), float(un.min_score)
            else:
                values, minimum = measured, float(un.min_activity_db)
            rule = f"keep score >= {un.min_score}" if by_model else f"activity >= {un.min_activity_db} dB"
            how = f"unattended: {rule}"
    picks.add(restored.offsets)  # a window you said yes to is a candidate under every rule
    chooser = ThresholdFilter(values, minimum, restored.offsets, rejected.offsets)
    picks.skipped += restored.skipped + rejected.skipped
    out = Path(cfg.paths.select)
    res = build_db(out / f"{code}.db", picks.offsets, rec_dir, class_db, settings, spec.name, code,
                   str(cfg.extract.category), bool(sel.progress), chooser)
    dropped = chooser.dropped
    how += (f", {len(dropped)} dropped, {sum(map(len, restored.offsets.values()))} restored by you, "
            f"{len(chooser.refused)} rejected by you")
    write_dropped(Path(cfg.paths.dropped) / code, dropped, class_db, settings,
                  "score" if by_model else "activity_db", chooser.overruled)
    write_skip_report(out / f"{code}.report.csv", picks.skipped + res.skipped)
    print(f"{code}: {res.spectrograms} spectrograms from {res.recordings} recordings ({how}); "
          f"{len(picks.skipped) + len(res.skipped)} skipped, see {out / f'{code}.report.csv'}")


if __name__ == "__main__":
    run(main)
