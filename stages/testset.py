"""testset: annotated test recordings for the evaluation stages, in data/test/.

kind demo writes synthetic soundscapes with calls of testset.calls at known times; kind local copies
the recordings and annotations.csv (recording,species,start_time,end_time) from testset.path.

    python -m stages.testset [testset.soundscapes=5 ...]
"""

from __future__ import annotations

import shutil
from pathlib import Path

from hawk.download.demo import make_soundscapes, write_annotations
from hawk.errors import HawkError
from stages._cli import load_config, parser, run


def main() -> None:
    cfg = load_config(parser(__doc__).parse_args())
    t = cfg.testset
    out = Path(cfg.paths.test)
    rec_dir = out / "recordings"
    rec_dir.mkdir(parents=True, exist_ok=True)
    if t.kind == "demo":
        rows = make_soundscapes(rec_dir, dict(t.calls), int(t.soundscapes), int(t.seed), float(t.seconds))
        write_annotations(out / "annotations.csv", rows)
    elif t.kind == "local":
        src = Path(str(t.path)).expanduser()
        if not (src / "annotations.csv").is_file():
            raise HawkError(f"testset.path {src} has no annotations.csv")
        shutil.copytree(src, out, dirs_exist_ok=True)
    else:
        raise HawkError(f"testset.kind must be demo or local, not {t.kind!r}")
    print(f"test set in {out}")


if __name__ == "__main__":
    run(main)
