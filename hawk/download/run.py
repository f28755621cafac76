"""Fill one class's recordings folder from its sources, resuming where an earlier run stopped.

Files already in the folder are never fetched again; each new file lands only when complete; a
recording that fails is reported and the rest carry on. ``manifest.csv`` (provenance) and
``download_report.csv`` (what was left out, and why) sit beside the recordings.
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hawk.audio import is_audio_file, not_audio
from hawk.classes import ClassSpec, Source
from hawk.download import demo, sources
from hawk.download.http import RETRY_STATUS, AuthError, FetchError, PoliteSession
from hawk.errors import HawkError
from hawk.fsutil import atomic_open, safe_name
from hawk.manifest import read_manifest, write_manifest
from hawk.progress import progress_bar
from hawk.reports import merge_skip_report

log = logging.getLogger(__name__)
XC_KEY_ENV = "XC_API_KEY"


@dataclass(frozen=True)
class DownloadOptions:
    max_per_class: int = 500
    allow_empty: bool = False  # a source that lists nothing is an error (a typo in a query or taxon)
    xc_base_url: str = "https://xeno-canto.org"
    xc_per_page: int = 500
    xc_qualities: tuple[str, ...] = ("A", "B", "C", "D", "E", "")
    xc_exclude_licenses: tuple[str, ...] = ("by-nc-nd",)
    inat_base_url: str = "https://api.inaturalist.org"
    inat_per_page: int = 200
    inat_quality_grade: str = "research"
    inat_exclude_licenses: tuple[str, ...] = ("cc-by-nc-nd",)
    min_interval: float = 1.0  # seconds between requests to one service
    retries: int = 4
    backoff: float = 2.0
    timeout: float = 30.0
    demo_recordings: int = 8
    demo_seed: int = 0

    @classmethod
    def from_config(cls, cfg: Any) -> "DownloadOptions":
        xc, inat, dm = cfg["xeno_canto"], cfg["inat"], cfg["demo"]
        return cls(
            max_per_class=int(cfg["max_per_class"]), allow_empty=bool(cfg["allow_empty"]),
            xc_base_url=xc["base_url"], xc_per_page=int(xc["per_page"]),
            xc_qualities=tuple(str(q) for q in xc["qualities"]),
            xc_exclude_licenses=tuple(xc["exclude_licenses"]), inat_base_url=inat["base_url"],
            inat_per_page=int(inat["per_page"]), inat_quality_grade=str(inat["quality_grade"] or ""),
            inat_exclude_licenses=tuple(inat["exclude_licenses"]),
            min_interval=float(cfg["min_interval"]), retries=int(cfg["retries"]), backoff=float(cfg["backoff"]),
            timeout=float(cfg["timeout"]), demo_recordings=int(dm["recordings"]), demo_seed=int(dm["seed"]),
        )

    def session(self) -> PoliteSession:
        """A session with a limiter of its own: make one per service and share it."""
        return PoliteSession(self.min_interval, self.retries, self.backoff, self.timeout)


# A service that fails this many file downloads in a row (after each one's retries) is taken to be down.
GIVE_UP_AFTER = 3


def is_transient(e: Exception) -> bool:
    """A failure a later run may not meet: no answer (refused, reset, timed out) or a 429/5xx after
    every retry. A final answer (404, 410...) or a file that is not audio is the record's own."""
    return isinstance(e, FetchError) and (e.status is None or e.status in RETRY_STATUS)


class DownloadError(HawkError):
    """A class's download that did not finish (a listing that failed, a source that listed nothing).
    What did arrive is kept; a rerun resumes."""


@dataclass
class DownloadResult:
    fetched: int = 0
    already_there: int = 0
    in_folder: int = 0  # recordings in the folder after this run, from this run or earlier ones
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.fetched + self.already_there


def download_class(
    spec: ClassSpec, out_dir: str | Path, opts: DownloadOptions, env: dict[str, str] | None = None,
    show_progress: bool = True, sessions: dict[str, PoliteSession] | None = None,
) -> DownloadResult:
    """Bring ``out_dir`` up to ``spec.max_recordings`` (or ``opts.max_per_class``) recordings.

    ``sessions`` maps a service (a source kind) to the session that talks to it; pass the same dict
    to several calls so their requests share each service's rate limit. Missing ones are made here.

    Each source is listed in full first (so the progress bar counts real candidates), then fetched.
    Raises :class:`DownloadError` at the end when a listing failed or listed nothing, or when files
    it listed could not be fetched for a reason that may pass (:func:`is_transient`); the manifest and
    report are written first, so nothing that arrived is lost and a rerun fetches only what is missing."""
    env = dict(os.environ if env is None else env)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for part in out.glob(".*.part"):  # a download killed mid-file left it; never a recording
        log.info("%s: removing %s, left by an interrupted download", spec.code, part.name)
        part.unlink()
    cap = spec.max_recordings if spec.max_recordings is not None else opts.max_per_class
    manifest_path = out / "manifest.csv"
    manifest = read_manifest(manifest_path) if manifest_path.exists() else {}
    _drop_field_copies(spec.code, out, manifest)
    result = DownloadResult()
    if any(s.kind == "xeno_canto" for s in spec.sources) and not env.get(XC_KEY_ENV):
        raise DownloadError(
            f"class {spec.code}: a Xeno-canto source needs an API key in the environment variable {XC_KEY_ENV} "
            "(get one from your xeno-canto.org account page)"
        )
    today = time.strftime("%Y-%m-%d")
    names = _Names(manifest)
    sessions = {} if sessions is None else sessions  # one per service: listing and files share its limiter
    failures: list[str] = []
    fetched_ids: set[str] = set()
    try:
        for source in spec.sources:
            if result.total >= cap:
                break
            if source.kind == "demo":
                _demo(spec, source, out, opts, cap, manifest, result, today)
                write_manifest(manifest_path, manifest.values())
                continue
            if source.kind not in sessions:
                sessions[source.kind] = opts.session()
            session = sessions[source.kind]
            listed, failure = _list(source, opts, env, session)
            if failure:
                failures.append(f"{_label(source)} listing failed: {failure}")
            elif not listed and not opts.allow_empty:
                failures.append(f"{_label(source)} lists no recordings (check it for a typo, "
                                "or set download.allow_empty=true)")
            candidates = [r for r in listed if isinstance(r, sources.Record)]
            unfetched: list[str] = []  # listed, but not fetched for a reason a later run may not meet
            in_a_row = 0
            bar = progress_bar(min(len(candidates), cap - result.total), f"download {spec.code} ({source.kind})",
                               show_progress)
            for rec in listed:
                if result.total >= cap:
                    break
                if isinstance(rec, sources.Skipped):
                    result.skipped.append((rec.id, rec.reason))
                    continue
                name = names.assign(rec)
                if name is None:
                    result.skipped.append((rec.id, "duplicate id (listed twice)"))
                    bar.update()
                    continue
                dest = out / name
                if dest.exists() and name in manifest:
                    result.already_there += 1
                else:
                    try:
                        _fetch(rec, dest, source, session)
                    except (FetchError, OSError) as e:
                        result.skipped.append((rec.id, f"download failed: {e}"))
                        log.warning("%s: %s", spec.code, e)
                        bar.update()
                        if is_transient(e):
                            unfetched.append(rec.id)
                            in_a_row += 1
                            if in_a_row == GIVE_UP_AFTER:
                                break
                        continue
                    result.fetched += 1
                    fetched_ids.add(rec.id)
                    in_a_row = 0
                manifest[name] = _row(rec, name, manifest.get(name, {}).get("downloaded") or today)
                write_manifest(manifest_path, manifest.values())
                bar.update()
            bar.close()
            if unfetched:
                stopped = f", stopped after {GIVE_UP_AFTER} in a row" if in_a_row == GIVE_UP_AFTER else ""
                failures.append(f"{_label(source)}: {len(unfetched)} listed recording(s) could not be fetched "
                                f"for a reason that may pass (first: {unfetched[0]}{stopped}; see download_report.csv)")
    finally:
        write_manifest(manifest_path, manifest.values())
        if any(s.kind == "inat" for s in spec.sources):
            _write_inat_csv(out / "inat.csv", manifest.values())
        result.in_folder = sum((out / n).exists() for n in manifest)
        merge_skip_report(out / "download_report.csv", result.skipped, today, resolved=fetched_ids)
    for rid, reason in result.skipped:
        log.warning("%s: skipped %s: %s", spec.code, rid, reason)
    if failures:
        raise DownloadError(f"class {spec.code}: " + "; ".join(failures)
                            + f" ({result.in_folder} recordings in {out} are kept; run again to resume)")
    return result


def _label(source: Source) -> str:
    what = {"xeno_canto": "query", "inat": "taxon", "local": "path"}[source.kind]
    return f"source {source.kind} ({what} {source.get(what)!r})"


def _demo(spec: ClassSpec, source: Source, out: Path, opts: DownloadOptions, cap: int,
          manifest: dict[str, dict[str, Any]], result: DownloadResult, today: str) -> None:
    seed = opts.demo_seed * 100 + zlib.crc32(spec.code.encode()) % 97
    for row in demo.make_demo_recordings(out, source.get("call"), min(cap - result.total, opts.demo_recordings), seed):
        name = str(row["file"])
        old = manifest.get(name, {})
        if old and (out / name).exists():
            result.already_there += 1
        else:
            result.fetched += 1
        manifest[name] = {**old, **row, "downloaded": old.get("downloaded") or today}


def _list(source: Source, opts: DownloadOptions, env: dict[str, str], session: PoliteSession,
          ) -> tuple[list[sources.Record | sources.Skipped], str]:
    """Everything a source lists, and why the listing stopped early ("" when it did not). A rejected
    key is raised at once, since no later request can succeed."""
    if source.kind == "local":
        return list(_local_records(source)), ""
    if source.kind == "xeno_canto":
        records = sources.xeno_canto(session, opts.xc_base_url, source.get("query"), env[XC_KEY_ENV],
                                     opts.xc_per_page, opts.xc_qualities, opts.xc_exclude_licenses)
    else:
        records = sources.inaturalist(session, opts.inat_base_url, source.get("taxon"),
                                      source.get("quality_grade", opts.inat_quality_grade), opts.inat_per_page,
                                      opts.inat_exclude_licenses)
    listed: list[sources.Record | sources.Skipped] = []
    try:
        for rec in records:
            listed.append(rec)
    except AuthError:
        raise
    except FetchError as e:
        return listed, str(e)
    log.info("%s: listed %d recordings", _label(source), len(listed))
    return listed, ""


class _Names:
    """File names in the class folder: one per distinct original, stable across runs.

    Sanitising can map distinct originals to one name (``a b.mp3``, ``a_b.mp3``, ``a'b.mp3``). A name
    already given to an original (in the manifest) stays its own; a new original whose clean name is
    taken gets a suffix made from its original name, so the same input always gets the same file."""

    def __init__(self, manifest: dict[str, dict[str, Any]]):
        self.by_origin = {_origin(r.get("source", ""), r.get("id", ""), r.get("url", "")): f for f, r in manifest.items()}
        self.taken = set(manifest)
        self.this_run: set[tuple[str, str]] = set()

    def assign(self, rec: sources.Record) -> str | None:
        """The file name for ``rec``, or None when the same original was listed before in this run."""
        origin = _origin(rec.source, rec.id, rec.page_url)
        if origin in self.this_run:
            return None
        self.this_run.add(origin)
        if origin in self.by_origin:
            return self.by_origin[origin]
        name = safe_name(rec.filename)
        if name in self.taken:
            stem, _, ext = name.rpartition(".")
            name = f"{stem}_{zlib.crc32(repr(origin).encode()):08x}.{ext}"
        self.taken.add(name)
        self.by_origin[origin] = name
        return name


def _origin(source: str, rid: str, url: str) -> tuple[str, str]:
    """What makes a recording itself: its id at a service, its path in a local folder."""
    return (source, url if source == "local" else rid)


def _fetch(rec: sources.Record, dest: Path, source: Source, session: PoliteSession) -> None:
    if rec.source != "local":
        session.download(rec.url, dest, check=not_audio)
        return
    mode = source.get("mode", "copy")
    if mode == "symlink":
        dest.symlink_to(Path(rec.url).resolve())
    elif mode == "hardlink":
        os.link(rec.url, dest)
    else:
        with open(rec.url, "rb") as src, atomic_open(dest, "wb") as dst:
            shutil.copyfileobj(src, dst)


def _drop_field_copies(code: str, out: Path, manifest: dict[str, dict[str, Any]]) -> None:
    """Remove the copies an earlier hawk made here of the clips you confirmed in the field queue
    (manifest source ``field``): pickle now reads them from data/field/<CODE>/ itself, so a copy left
    here would train the same window twice. The clips in data/field/ are not touched."""
    copies = [name for name, row in manifest.items() if row.get("source") == "field"]
    for name in copies:
        (out / name).unlink(missing_ok=True)
        del manifest[name]
    if copies:
        log.warning("%s: removed %d copies of confirmed field clips (pickle reads data/field/ now)", code, len(copies))


def _local_records(source: Source) -> Iterator[sources.Record | sources.Skipped]:
    folder = Path(source.get("path")).expanduser()
    if not folder.is_dir():
        raise DownloadError(f"local source folder {folder} does not exist")
    for p in sorted(folder.rglob("*")):
        if is_audio_file(p):
            stem = safe_name(p.stem)
            yield sources.Record(id=stem, url=str(p), ext=p.suffix.lower()[1:], source="local",
                                 page_url=str(p.relative_to(folder)))


def _row(rec: sources.Record, name: str, downloaded: str) -> dict[str, str]:
    return {"file": name, "id": rec.id, "source": rec.source, "url": rec.page_url or rec.url, "license": rec.license,
            "recordist": rec.recordist, "species": rec.species, "quality": rec.quality, "duration": rec.duration,
            "downloaded": downloaded}


def _write_inat_csv(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """HawkEars' inat.csv: iNaturalist sound ids do not match observation ids, so map one to the other."""
    with atomic_open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["sound_id", "observation_url"])
        for r in sorted(rows, key=lambda r: r["file"]):
            if r.get("source") == "inaturalist":
                w.writerow([str(r["id"])[1:], r["url"]])
