"""Listings of recordings from Xeno-canto (API v3) and iNaturalist (API v1).

Each listing yields :class:`Record` (a file to fetch, with its provenance) or :class:`Skipped`
(a listed recording left out, and why), so the caller can report every decision.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from hawk.audio import AUDIO_EXTENSIONS
from hawk.download.http import FetchError, PoliteSession

_CONTENT_TYPES = {
    "audio/mpeg": "mp3", "audio/mp3": "mp3", "audio/x-wav": "wav", "audio/wav": "wav", "audio/wave": "wav",
    "audio/mp4": "m4a", "audio/x-m4a": "m4a", "audio/m4a": "m4a", "audio/aac": "aac", "audio/ogg": "ogg",
    "audio/flac": "flac", "audio/x-flac": "flac",
}


@dataclass(frozen=True)
class Record:
    id: str  # file stem: XC<id> or N<sound id>
    url: str  # audio file
    ext: str
    source: str
    page_url: str = ""
    license: str = ""
    recordist: str = ""
    species: str = ""
    quality: str = ""
    duration: str = ""

    @property
    def filename(self) -> str:
        return f"{self.id}.{self.ext}"


@dataclass(frozen=True)
class Skipped:
    id: str
    reason: str


def _ext(name_or_url: str, content_type: str = "", default: str = "mp3") -> str:
    ext = posixpath.splitext(urlparse(name_or_url).path)[1].lower()
    if f"{ext}" in AUDIO_EXTENSIONS:
        return ext[1:]
    return _CONTENT_TYPES.get(content_type.split(";")[0].strip().lower(), default)


def _https(url: str) -> str:
    return "https:" + url if url.startswith("//") else url


def parse_length(text: str) -> str:
    """Xeno-canto's ``m:ss`` or ``h:mm:ss`` as seconds (empty when unparseable)."""
    try:
        seconds = 0
        for part in str(text).split(":"):
            seconds = seconds * 60 + int(part)
        return str(seconds)
    except ValueError:
        return ""


def xeno_canto(
    session: PoliteSession,
    base_url: str,
    query: str,
    key: str,
    per_page: int = 500,
    qualities: Sequence[str] = ("A", "B", "C", "D", "E", ""),
    exclude_licenses: Sequence[str] = ("by-nc-nd",),
) -> Iterator[Record | Skipped]:
    """All pages of a Xeno-canto v3 tag query (e.g. ``sp:"turdus migratorius" q:">C"``)."""
    url = base_url.rstrip("/") + "/api/3/recordings"
    page, pages = 1, 1
    while page <= pages:
        data = session.get_json(url, {"query": query, "key": key, "per_page": per_page, "page": page})
        if not isinstance(data, dict) or not isinstance(data.get("recordings"), list):
            raise FetchError(url, f"page {page}: unexpected JSON (no 'recordings' list)")
        try:
            pages = int(data.get("numPages", 1))
        except (TypeError, ValueError):
            raise FetchError(url, f"page {page}: numPages is {data.get('numPages')!r}") from None
        for r in data["recordings"]:
            yield _xc_record(r, qualities, exclude_licenses)
        page += 1


def _xc_record(r: Any, qualities: Sequence[str], exclude_licenses: Sequence[str]) -> Record | Skipped:
    rid = str(r.get("id", "")).strip() if isinstance(r, dict) else ""
    if not rid.isdigit():
        return Skipped(f"XC{rid}" if rid else "?", f"malformed record (id {rid!r})")
    xc = f"XC{rid}"
    if not r.get("file"):
        return Skipped(xc, "restricted: no file URL (Xeno-canto hides recordings of sensitive species)")
    q = str(r.get("q", "")).strip()
    if q not in qualities and not (q in ("no score", "") and "" in qualities):
        return Skipped(xc, f"quality {q or 'none'} not in {list(qualities)}")
    lic = str(r.get("lic", ""))
    for bad in exclude_licenses:
        if f"/{bad}/" in lic:
            return Skipped(xc, f"licence {bad} excluded ({_https(lic)})")
    return Record(
        id=xc, url=_https(str(r["file"])), ext=_ext(str(r.get("file-name", ""))), source="xeno-canto",
        page_url=_https(str(r.get("url", f"//xeno-canto.org/{rid}"))), license=_https(lic),
        recordist=str(r.get("rec", "")), species=f"{r.get('gen', '')} {r.get('sp', '')}".strip(),
        quality=q, duration=parse_length(r.get("length", "")),
    )


def inaturalist(
    session: PoliteSession, base_url: str, taxon: str, quality_grade: str = "research", per_page: int = 200,
    exclude_licenses: Sequence[str] = ("cc-by-nc-nd",),
) -> Iterator[Record | Skipped]:
    """Observations with sounds of one taxon, paged by ``id_above`` (no 10,000-result cap); only those
    whose ``taxon.name`` is exactly ``taxon``, since iNaturalist's name matching is loose.

    Paging goes on until a page is empty or ``total_results`` (of the first page) observations have
    come: a short page proves nothing, since the server may cap ``per_page`` below what was asked."""
    url = base_url.rstrip("/") + "/v1/observations"
    id_above, seen, total = 0, 0, None
    while total is None or seen < total:  # total: observations the first page says there are
        params = {"taxon_name": taxon, "sounds": "true", "per_page": per_page, "order_by": "id", "order": "asc",
                  "id_above": id_above}
        if quality_grade:
            params["quality_grade"] = quality_grade
        data = session.get_json(url, params)
        results = data.get("results") if isinstance(data, dict) else None
        if not isinstance(results, list):
            raise FetchError(url, f"id_above={id_above}: unexpected JSON (no 'results' list)")
        if not results:
            return
        if total is None:
            try:
                total = int(data.get("total_results"))
            except (TypeError, ValueError):
                total = float("inf")  # not given: page until an empty page
        seen += len(results)
        for obs in results:
            yield from _inat_records(obs, taxon, exclude_licenses)
        ids = [o.get("id") for o in results if isinstance(o, dict) and isinstance(o.get("id"), int)]
        if not ids or max(ids) <= id_above:
            raise FetchError(url, f"id_above={id_above}: the page did not move past id {id_above}")
        id_above = max(ids)


def _inat_records(obs: Any, taxon: str, exclude_licenses: Sequence[str]) -> Iterator[Record | Skipped]:
    if not isinstance(obs, dict):
        yield Skipped("?", "malformed observation")
        return
    name = str((obs.get("taxon") or {}).get("name", ""))
    oid = obs.get("id")
    if name.lower() != taxon.lower():
        yield Skipped(f"observation {oid}", f"taxon {name!r} is not {taxon!r}")
        return
    for snd in obs.get("sounds") or []:
        sid = str(snd.get("id", ""))
        if not re.fullmatch(r"\d+", sid):
            yield Skipped(f"observation {oid}", f"malformed sound id {sid!r}")
            continue
        if not snd.get("file_url"):
            yield Skipped(f"N{sid}", "no file URL")
            continue
        lic = str(snd.get("license_code") or obs.get("license_code") or "")
        if lic.lower() in {x.lower() for x in exclude_licenses}:
            yield Skipped(f"N{sid}", f"licence {lic} excluded")
            continue
        yield Record(
            id=f"N{sid}", url=str(snd["file_url"]), ext=_ext(str(snd["file_url"]), str(snd.get("file_content_type", ""))),
            source="inaturalist", page_url=str(obs.get("uri", f"https://www.inaturalist.org/observations/{oid}")),
            license=lic,
            recordist=str((obs.get("user") or {}).get("login", "")), species=name, quality=str(obs.get("quality_grade", "")),
        )
