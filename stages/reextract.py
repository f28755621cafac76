"""reextract (by hand): rebuild a spectrogram database with new audio.* settings from the same
recordings and offsets (the seed's tools/reextract.py).

Each class's recordings are read from paths.recordings/<CODE>/. The input is left as it is.

    python -m stages.reextract --db data/train.db --out data/train_v2.db audio.spec_height=128 audio.max_freq=11000
"""

from __future__ import annotations

from pathlib import Path

from hawk.curation import build_db, merge_dbs
from hawk.db import SpecDB
from hawk.errors import HawkError
from stages._cli import load_config, parser, run, spec_settings


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--db", required=True, help="database to re-extract (HawkEars schema)")
    p.add_argument("--out", required=True, help="new database to write")
    args = p.parse_args()
    cfg = load_config(args)
    src, out = Path(args.db), Path(args.out)
    if src.resolve() == out.resolve():
        raise HawkError("--out must differ from --db (the input is kept)")
    with SpecDB(src) as db:
        classes = db.conn.execute("SELECT ID, Name, Code FROM Subcategory ORDER BY ID").fetchall()
        per_class = {}
        for sub_id, name, code in classes:
            offsets: dict[str, list[float]] = {}
            for fname, off in db.conn.execute(
                    "SELECT r.FileName, s.Offset FROM Spectrogram s JOIN Recording r ON r.ID = s.RecordingID "
                    "WHERE r.SubcategoryID = ? ORDER BY r.FileName, s.Offset", (sub_id,)):
                offsets.setdefault(fname, []).append(off)
            per_class[code] = (name, offsets)
    settings = spec_settings(cfg)
    parts = []
    for code, (name, offsets) in per_class.items():
        part = out.with_name(f".{out.stem}.{code}.db")
        res = build_db(part, offsets, Path(cfg.paths.recordings) / code, src, settings, name, code,
                       str(cfg.extract.category))
        for fname, reason in res.skipped:
            print(f"skipped {code}/{fname}: {reason}")
        parts.append(part)
    n = merge_dbs(parts, out)
    for part in parts:
        part.unlink()
    print(f"reextract: {n} spectrograms of {len(parts)} classes in {out}")


if __name__ == "__main__":
    run(main)
