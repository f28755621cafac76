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

from hawk.audio import is_audio_file
from hawk.classes import ClassSpec, Source
from hawk.download import demo, sources
from hawk.download.http import AuthError, FetchError, PoliteSession
from hawk.fsutil import atomic_open, safe_name
from hawk.manifest import read_manifest, write_manifest
from hawk.progress import progress_bar
from hawk.reports import write_skip_report

log = logging.getLogger(__name__)
XC_KEY_ENV = "XC_API_KEY"


@dataclass(frozen=True)
class DownloadOptions:
    max_per_class: int = 500
    xc_base_url: str = "https://xeno-canto.org"
    xc_per_page: int = 500
    xc_qualities: tuple[str, ...] = ("A", "B", "C", "D", "E", "")
    xc_exclude_licenses: tuple[str, ...] = ("by-nc-nd",)
    inat_base_url: str = "https://api.inaturalist.org"
    inat_per_page: int = 200
    inat_quality_grade: str = "research"
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
            max_per_class=int(cfg["max_per_class"]), xc_base_url=xc["base_url"], xc_per_page=int(xc["per_page"]),
            xc_qualities=tuple(str(q) for q in xc["qualities"]),
            xc_exclude_licenses=tuple(xc["exclude_licenses"]), inat_base_url=inat["base_url"],
            inat_per_page=int(inat["per_page"]), inat_quality_grade=str(inat["quality_grade"] or ""),
            min_interval=float(cfg["min_interval"]), retries=int(cfg["retries"]), backoff=float(cfg["backoff"]),
            timeout=float(cfg["timeout"]), demo_recordings=int(dm["recordings"]), demo_seed=int(dm["seed"]),
        )

    def session(self) -> PoliteSession:
        return PoliteSession(self.min_interval, self.retries, self.backoff, self.timeout)


@dataclass
class DownloadResult:
    fetched: int = 0
    already_there: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.fetched + self.already_there


def download_class(
    spec: ClassSpec, out_dir: str | Path, opts: DownloadOptions, env: dict[str, str] | None = None,
    show_progress: bool = True,
) -> DownloadResult:
    """Bring ``out_dir`` up to ``spec.max_recordings`` (or ``opts.max_per_class``) recordings."""
    env = dict(os.environ if env is None else env)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cap = spec.max_recordings if spec.max_recordings is not None else opts.max_per_class
    manifest_path = out / "manifest.csv"
    manifest = read_manifest(manifest_path) if manifest_path.exists() else {}
    result = DownloadResult()
    if any(s.kind == "xeno_canto" for s in spec.sources) and not env.get(XC_KEY_ENV):
        raise RuntimeError(
            f"class {spec.code}: a Xeno-canto source needs an API key in the environment variable {XC_KEY_ENV} "
            "(get one from your xeno-canto.org account page)"
        )
    today = time.strftime("%Y-%m-%d")
    bar = progress_bar(cap, f"download {spec.code}", show_progress)
    seen: set[str] = set()
    for source in spec.sources:
        if result.total >= cap:
            break
        if source.kind == "demo":
            rows = demo.make_demo_recordings(out, source.get("call"), min(cap - result.total, opts.demo_recordings),
                                             seed=opts.demo_seed * 100 + zlib.crc32(spec.code.encode()) % 97)
            for row in rows:
                manifest[row["file"]] = {**manifest.get(row["file"], {}), **row, "downloaded": today}
                result.fetched += 1
                bar.update()
            write_manifest(manifest_path, manifest.values())
            continue
        if source.kind == "local":
            records: Iterable[sources.Record | sources.Skipped] = _local_records(source)
        else:
            records = _listing(source, opts, env)
        session = opts.session()
        for rec in _guarded(records, source, result):
            if result.total >= cap:
                break
            if isinstance(rec, sources.Skipped):
                result.skipped.append((rec.id, rec.reason))
                continue
            name = safe_name(rec.filename)
            if name in seen:
                result.skipped.append((rec.id, "duplicate id (listed twice)"))
                continue
            seen.add(name)
            dest = out / name
            if dest.exists() and name in manifest:
                result.already_there += 1
            else:
                try:
                    _fetch(rec, dest, source, session)
                except (FetchError, OSError) as e:
                    result.skipped.append((rec.id, f"download failed: {e}"))
                    log.warning("%s: %s", spec.code, e)
                    continue
                result.fetched += 1
            manifest[name] = _row(rec, name, manifest.get(name, {}).get("downloaded") or today)
            write_manifest(manifest_path, manifest.values())
            bar.update()
    bar.close()
    write_manifest(manifest_path, manifest.values())
    if any(s.kind == "inat" for s in spec.sources):
        _write_inat_csv(out / "inat.csv", manifest.values())
    write_skip_report(out / "download_report.csv", result.skipped)
    for rid, reason in result.skipped:
        log.warning("%s: skipped %s: %s", spec.code, rid, reason)
    return result


def _listing(source: Source, opts: DownloadOptions, env: dict[str, str]) -> Iterator[sources.Record | sources.Skipped]:
    session = opts.session()
    if source.kind == "xeno_canto":
        return sources.xeno_canto(session, opts.xc_base_url, source.get("query"), env[XC_KEY_ENV], opts.xc_per_page,
                                  opts.xc_qualities, opts.xc_exclude_licenses)
    return sources.inaturalist(session, opts.inat_base_url, source.get("taxon"),
                               source.get("quality_grade", opts.inat_quality_grade), opts.inat_per_page)


def _guarded(records: Iterable[Any], source: Source, result: DownloadResult) -> Iterator[Any]:
    """Stop a listing that fails part-way (after retries) without losing what it already gave;
    a rejected key stops the stage, since no later request can succeed."""
    try:
        yield from records
    except AuthError:
        raise
    except FetchError as e:
        result.skipped.append((f"{source.kind} listing", f"stopped early: {e}"))


def _fetch(rec: sources.Record, dest: Path, source: Source, session: PoliteSession) -> None:
    if rec.source != "local":
        session.download(rec.url, dest)
        return
    mode = source.get("mode", "copy")
    if mode == "symlink":
        dest.symlink_to(Path(rec.url).resolve())
    elif mode == "hardlink":
        os.link(rec.url, dest)
    else:
        with open(rec.url, "rb") as src, atomic_open(dest, "wb") as dst:
            shutil.copyfileobj(src, dst)


def _local_records(source: Source) -> Iterator[sources.Record | sources.Skipped]:
    folder = Path(source.get("path")).expanduser()
    if not folder.is_dir():
        yield sources.Skipped(str(folder), "local source folder does not exist")
        return
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
