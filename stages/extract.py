"""extract: build data/db/<CODE>.db, the class's spectrogram database (HawkEars schema).

One spectrogram every audio.offset seconds from every recording in data/recordings/<CODE>/. Incremental:
recordings already in the database are kept, new ones added, ones whose files are gone removed; a
change of audio.* settings rebuilds the database. Files that are too short, silent, corrupt or not audio
are skipped and listed with the reason in data/db/<CODE>.report.csv.

    python -m stages.extract --code AMRO [audio.offset=3 extract.workers=1 ...]
    python -m stages.extract --code AMRO engine=ray engine.address=auto   # the recordings spread over a cluster
"""

from __future__ import annotations

from pathlib import Path

from hawk.extract import extract_class
from stages._cli import class_stage, engine, run, spec_settings


def main() -> None:
    cfg, spec = class_stage(__doc__)
    settings = spec_settings(cfg)
    db_dir = Path(cfg.paths.db)
    with engine(cfg) as eng:
        res = extract_class(Path(cfg.paths.recordings) / spec.code, db_dir / f"{spec.code}.db",
                            db_dir / f"{spec.code}.report.csv", spec.name, spec.code, settings,
                            workers=int(cfg.extract.workers), category=str(cfg.extract.category),
                            show_progress=bool(cfg.extract.progress), engine=eng)
    print(f"{spec.code}: +{res.added_recordings} recordings (+{res.added_spectrograms} spectrograms"
          f"{f', {res.blank_segments} blank segments left out' if res.blank_segments else ''}), "
          f"{res.kept_recordings} unchanged, {res.removed_recordings} removed, {len(res.skipped)} skipped "
          f"in {res.seconds:.1f} s")


if __name__ == "__main__":
    run(main)
