"""curate (by hand): copy a class's search images into its curation folder, data/curation/<CODE>/.

Then delete the images you do not want and run `dvc repro`. An image is copied only once: one you
deleted is never copied back, whatever searches you run later (the folder's .copied file remembers).

    python -m stages.curate --code RIWH [--from data/search/_manual]
"""

from __future__ import annotations

from pathlib import Path

from hawk.curation import seed_curation
from hawk.errors import HawkError
from stages._cli import load_config, parser, run


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--code", required=True, help="class code")
    p.add_argument("--from", dest="src", help="image folder (default: paths.search/<code>)")
    args = p.parse_args()
    cfg = load_config(args)
    src = Path(args.src or Path(cfg.paths.search) / args.code)
    if not src.is_dir():
        raise HawkError(f"{src} does not exist; run `dvc repro search@{args.code}` first")
    dest = Path(cfg.paths.curation) / args.code
    n = seed_curation(src, dest)
    print(f"{n} new images copied to {dest}; delete the bad ones, then `dvc repro`")


if __name__ == "__main__":
    run(main)
