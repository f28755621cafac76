"""review (by hand): curate a class in the browser, keyboard first.

Starts a local web server on 127.0.0.1 (a free port unless --port) and opens the page: the class's
curation folder data/curation/<CODE>/ as a grid of spectrogram images, best match first, each with its
recording, offset and distance. Arrows move, space plays the image's 3 s, x rejects, r restores,
u undoes, o opens the recording around that offset; filter by distance. Rejecting moves the image
into data/curation/<CODE>/rejected/ (nothing is deleted; select reads only the kept ones), at once.
Then `dvc repro` reruns select for that class. A search output folder (--folder data/search/<CODE>)
is shown read-only: it is a pipeline output, so curate its copy (python -m stages.curate) instead.
What unattended curation dropped (data/dropped/<CODE>/) is shown beside the class's folder: r restores
an image (a copy into data/curation/<CODE>/restored/, which select always keeps), x drops it again.

The doubt queue (--doubt CODE, after `dvc repro`; also listed with --code and --all) holds the windows
the model most wants a verdict on, best first, each with its reason; the keys are BirdNET-Analyzer's:
up yes, down no, left undo, right skip (and r, x, u), and each window's 3 s plays as you reach it.
Yes copies the image into data/curation/<CODE>/restored/ (select keeps it), no into rejected/ (select
never trains on it); the next `dvc repro` retrains with them and queues the next round.
The field queue (--field CODE) asks the same about windows of your own recordings (infer.input): a
yes writes the window's 3 s into data/field/<CODE>/, and `dvc repro` trains on it as a recording of
that class.

    python -m stages.review --code RIWH
    python -m stages.review --doubt RIWH
    python -m stages.review --field RIWH
    python -m stages.review --all --port 8800 --no-browser
"""

from __future__ import annotations

import webbrowser
from pathlib import Path

from hawk.errors import HawkError
from hawk.infer import find_recordings, recordings_root
from hawk.review import DroppedFolder, FieldQueueFolder, ImageFolder, QueueFolder, ReviewServer
from stages._cli import class_list, load_config, parser, run, spec_settings


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--code", help="class code: review data/curation/<CODE>/")
    p.add_argument("--all", action="store_true", help="every class that has a curation folder")
    p.add_argument("--doubt", metavar="CODE", help="review the class's doubt queue, data/doubt/<CODE>/")
    p.add_argument("--field", metavar="CODE", help="review the class's field queue, data/field_queue/<CODE>/")
    p.add_argument("--folder", help="another image folder under the data folder (e.g. data/search/RIWH)")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("--no-browser", action="store_true", help="print the address, do not open a browser")
    args = p.parse_args()
    cfg = load_config(args)
    data = Path(cfg.paths.data).resolve()
    curation, recordings, dropped = Path(cfg.paths.curation), Path(cfg.paths.recordings), Path(cfg.paths.dropped)
    doubt = Path(cfg.paths.doubt)
    codes = [c.code for c in class_list(cfg)]
    queries = cfg.search.queries or {}

    def notice(code: str) -> str:  # a verdict select would ignore is worth saying before it is given
        if cfg.select.auto_keep and queries.get(code):
            return (f"select.auto_keep is on: select keeps every search match of {code} within "
                    f"select.max_distance ({cfg.select.max_distance}), less the ones you reject; keeping an "
                    "image here adds nothing beyond that distance (set select.auto_keep=false to train on "
                    "exactly the images you keep)")
        return ""

    def hint(code: str) -> str:
        return (f"No images here yet. `python -m stages.curate --code {code}` copies {code}'s search matches "
                f"into {curation / code}/ (or `python -m stages.plot --code {code} --out {curation / code}` "
                "draws every spectrogram); then reload this page.")

    def queue(code: str) -> QueueFolder:
        """The class's doubt queue: select honours its verdicts under every rule; say where a yes
        changes nothing (a class kept whole keeps the window anyway)."""
        whole = (f"{code} is kept whole (select.unattended.keep_all): a yes changes nothing, a no takes the "
                 "window out of training") if code in cfg.select.unattended.keep_all and not queries.get(code) else ""
        return QueueFolder(f"{code}-doubt", doubt / code, curation / code, recordings / code,
                           f"{code} doubt queue (what the model asks you)", notice=whole,
                           hint=f"No queue yet: `dvc repro` (train, then doubt) fills {doubt / code}/.")

    def check(code: str) -> None:
        if code not in codes:
            raise HawkError(f"class {code!r} is not declared (known: {', '.join(codes)})")

    folders: list[ImageFolder] = []
    s = spec_settings(cfg)
    if args.doubt or args.field:
        if args.doubt:
            check(args.doubt)
            folders.append(queue(args.doubt))
        if args.field:
            check(args.field)
            inputs = find_recordings(cfg.infer.input)
            folders.append(FieldQueueFolder(
                f"{args.field}-field", Path(cfg.paths.field_queue) / args.field, Path(cfg.paths.field) / args.field,
                recordings_root(cfg.infer.input, inputs), s.sample_rate, s.segment_len,
                f"{args.field} in your recordings ({cfg.infer.input})",
                hint=f"No field queue yet: `dvc repro field` (after train) scores {cfg.infer.input}."))
    elif args.folder:
        path = Path(args.folder).resolve()
        if not path.is_dir() or not path.is_relative_to(data):
            raise HawkError(f"{args.folder}: not a folder inside {cfg.paths.data}")
        code = args.code or path.name
        writable = path.is_relative_to(curation.resolve())
        folders.append(ImageFolder(code, path, recordings / code, f"{code} ({args.folder})", writable,
                                   notice(code) if writable else ""))
    elif args.all or args.code:
        for code in codes if args.all else [args.code]:
            check(code)
            if (doubt / code / "queue.csv").is_file():
                folders.append(queue(code))
            if (curation / code).is_dir():
                folders.append(ImageFolder(code, curation / code, recordings / code, f"{code} curation",
                                           notice=notice(code), hint=hint(code)))
            if any((dropped / code).glob("*.jpeg")):  # unattended curation's drops: `r` restores one
                folders.append(DroppedFolder(f"{code}-dropped", dropped / code, curation / code / "restored",
                                             recordings / code, f"{code} dropped by unattended curation "
                                             "(kept = restored by you)"))
    else:
        raise HawkError("give --code CODE, --doubt CODE, --field CODE, --all or --folder PATH")
    if not folders:
        raise HawkError(f"no curation folder in {curation}; run `python -m stages.curate --code CODE` "
                        "(search matches) or `python -m stages.plot --code CODE --out data/curation/CODE` first")
    server = ReviewServer(folders, s.sample_rate, s.segment_len, port=args.port)
    print(f"review: {', '.join(f.title for f in folders)} at {server.url} (Ctrl-C to stop; the address "
          "carries this session's token: other pages cannot drive the review)", flush=True)
    if not args.no_browser:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    run(main)
