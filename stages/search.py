"""search: spectrograms like a query, drawn for curation (the seed's search.py).

As a pipeline stage (`--code CODE`) it runs the class's queries from `search.queries` and writes
data/search/<CODE>/: images named `{rank}~{stem}-{offset:.2f}~{distance:.3f}.jpeg` (rank 0 is the
query), matches.csv, and index.html, a contact sheet where each segment can be played. It also makes
the empty curation folder data/curation/<CODE>/, which is yours: copy the images you want to keep
there (`python -m stages.curate --code CODE`), delete the bad ones, and `dvc repro`.

By hand, search with any segment:

    python -m stages.search --code RIWH --recording DEMO56003.ogg --offset 4.5 [--out DIR] [--omit]
    python -m stages.search --all --audio my_clip.wav search.dist=0.3 search.num=50

Recordings that dedup left out are never matched. A by-hand search of a class the embed stage left
unembedded (no queries) embeds it first, into data/embed/_manual/ (reused by the next search).
"""

from __future__ import annotations

import time
from pathlib import Path

from hawk.classes import ClassSpec
from hawk.db import SpecDB
from hawk.dedup import read_exclude
from hawk.embed.run import embed_class, is_unused
from hawk.errors import HawkError
from hawk.search import Query, ids_in_training, load_index, search
from stages._cli import class_list, embedder, load_config, parser, run, spec_settings


def _queries(raw: list, rec_dir: Path, code: str) -> list[Query]:
    out = []
    for i, q in enumerate(raw or []):
        if "recording" in q:
            out.append(Query(rec_dir / str(q["recording"]), float(q.get("offset", 0.0))))
        elif "audio" in q:
            out.append(Query(Path(str(q["audio"])), float(q.get("offset", 0.0))))
        else:
            raise HawkError(f"search.queries.{code}[{i}] needs recording: FILE or audio: PATH")
    return out


def make_curation_folder(folder: Path, code: str) -> None:
    """Create the class's curation folder once, with a note, so it exists for select and for git (which
    keeps no empty folders, and queued experiments see only what git has). Never touched again."""
    if folder.exists():
        return
    folder.mkdir(parents=True)
    (folder / "README.txt").write_text(
        f"Curation folder of {code}: the spectrogram images kept for training.\n"
        f"Fill it with `python -m stages.curate --code {code}` (or copy images here), delete the bad ones,\n"
        "then `dvc repro`. dvc never writes here again; commit this folder to git.\n", encoding="utf-8")


def main() -> None:
    start = time.perf_counter()
    p = parser(__doc__)
    p.add_argument("--code", help="class to search (its configured queries, unless a query is given)")
    p.add_argument("--all", action="store_true", help="search every class's embeddings")
    p.add_argument("--recording", help="query: a recording in the class's recordings folder")
    p.add_argument("--audio", help="query: any audio file")
    p.add_argument("--offset", type=float, default=0.0, help="query segment start, seconds (default 0)")
    p.add_argument("--out", help="image folder (default: paths.search/<code>, or .../_manual when by hand)")
    p.add_argument("--omit", action="store_true", help="skip spectrograms already in the training database")
    args = p.parse_args()
    cfg = load_config(args)
    classes: dict[str, ClassSpec] = {c.code: c for c in class_list(cfg)}
    if not args.code and not args.all:
        raise HawkError("give --code CODE or --all")
    if args.code and args.code not in classes:
        raise HawkError(f"no class {args.code!r} in the classes config")
    rec_root, db_root = Path(cfg.paths.recordings), Path(cfg.paths.db)
    scope = list(classes) if args.all else [args.code]
    by_hand = bool(args.recording or args.audio)
    if args.recording:
        if not args.code:
            raise HawkError("--recording needs --code (the class whose folder holds it)")
        queries = [Query(rec_root / args.code / args.recording, args.offset)]
    elif args.audio:
        queries = [Query(Path(args.audio), args.offset)]
    else:
        queries = _queries(cfg.search.queries.get(args.code, []) if args.code else [], rec_root / args.code, args.code)
    exclude = read_exclude(Path(cfg.paths.dedup) / "exclude.csv")
    leave_out: dict[str, set[int]] = {}
    for code in scope:
        files = [f for c, f in exclude if c == code]
        with SpecDB(db_root / f"{code}.db") as db:
            leave_out[code] = set(db.spectrogram_ids(files))
        if args.omit:
            leave_out[code] |= ids_in_training(db_root / f"{code}.db", Path(cfg.paths.train_db), code)
    emb = embedder(cfg) if queries else None  # no queries: write an empty result without loading a model
    stores = {c: Path(cfg.paths.embeddings) / f"{c}.npz" for c in scope}
    for c in [c for c in scope if by_hand and is_unused(stores[c])]:  # the embed stage skipped it: embed now
        stores[c] = Path(cfg.paths.embeddings) / "_manual" / f"{c}.npz"
        embed_class(db_root / f"{c}.db", rec_root / c, emb, stores[c], stores[c].with_suffix(".report.csv"), c,
                    show_progress=bool(cfg.embedder.progress))
    index = load_index(stores, leave_out)
    name = args.code if (args.code and not by_hand and not args.all) else "_manual"
    out = Path(args.out or Path(cfg.paths.search) / name)
    try:
        matches = search(queries, index, emb, {c: db_root / f"{c}.db" for c in scope},
                         {c: rec_root / c for c in scope}, spec_settings(cfg), out, float(cfg.search.dist),
                         int(cfg.search.num))
    except ValueError as e:  # a missing or unreadable query names itself (hawk's own errors pass as they are)
        raise HawkError(str(e)) from None
    if args.code and not by_hand:
        make_curation_folder(Path(cfg.paths.curation) / args.code, args.code)
    print(f"search: {len(queries)} queries over {len(index)} embeddings -> {len(matches)} images in {out} "
          f"({time.perf_counter() - start:.1f} s); open {out / 'index.html'} to look and listen")


if __name__ == "__main__":
    run(main)
