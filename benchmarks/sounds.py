"""Recorded sound for the benchmark kit: backgrounds, distractors and speech cut from Debian packages.

Synthetic rain and hoots are easy to tell from a bird; recorded rain, speech, dogs, engines and real
birds are not, and they are what training recordings and field soundscapes hold. Freely licensed
recordings ship inside Debian's game and education packages, which ``apt-get download`` reaches
from any Debian machine (no other internet needed):

| package (version) | what the kit takes | licence |
|---|---|---|
| megaglest-data (3.13.0-3) | recorded ambiences: rain, wind, forest day and night (with real birds) | CC BY-SA 3.0 |
| wesnoth-1.16-data (1:1.16.9-1) | short ambiences (campfire, a ship, morning, night) and bird clips, as events | GPL-2+ |
| widelands-data (2:1.1-3) | animals (birds, crickets, frog, wolves, deer), workshop and farm sounds | GPL-2+ |
| tuxpaint-stamps-default (2022.06.04-1) | animal and household recordings; spoken descriptions in 8 languages | GPL-2 |
| alsa-utils (1.2.8-1) | spoken channel names | GPL-2 |

The audio is never committed: ``fetch`` downloads the packages into a cache folder (about 800 MB of
downloads, 90 MB kept), converts the chosen files to 32 kHz mono FLAC by kind (``bed/``: ambiences of
15 s or more, looped under a whole recording; ``event/``; ``speech/``), drops byte-identical copies,
and writes ``index.csv`` (file, kind, package, version, licence, path in the package, seconds),
each package's Debian ``copyright`` file under ``licences/`` and a README with this table beside them.

    python benchmarks/sounds.py --cache ~/.cache/hawk/kit-sounds
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import hashlib
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

SR = 32000
KINDS = ("bed", "event", "speech")
BED_SECONDS = 15  # shorter ambiences count as events


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    licence: str
    take: tuple[tuple[str, str], ...]  # (glob inside the package, kind)


MG = "./usr/share/games/megaglest/tilesets/*/sounds/"
WN = "./usr/share/games/wesnoth/1.16/data/core/sounds/ambient/"
WL = "./usr/share/games/widelands/data/sound/"
TP = "./usr/share/tuxpaint/stamps/"
PACKAGES = (
    Package("megaglest-data", "3.13.0-3", "CC-BY-SA-3.0", (
        (MG + "rain.*", "bed"), (MG + "wind.ogg", "bed"), (MG + "day.ogg", "bed"), (MG + "night.ogg", "bed"),
        (MG + "sunny_day.ogg", "bed"), (MG + "nightime.ogg", "bed"), (MG + "desertday.ogg", "bed"),
        (MG + "owl.ogg", "event"), (MG + "wolf.wav", "event"), (MG + "hawk.ogg", "event"),
        (MG + "rooster.ogg", "event"), (MG + "chicken.wav", "event"))),
    Package("wesnoth-1.16-data", "1:1.16.9-1", "GPL-2+", (
        (WN + "campfire.ogg", "bed"), (WN + "ship.ogg", "bed"), (WN + "morning.ogg", "bed"),
        (WN + "night.ogg", "bed"), (WN + "birds*.ogg", "event"))),
    Package("widelands-data", "2:1.1-3", "GPL-2+", (
        (WL + "animals/*.ogg", "event"), (WL + "farm/*.ogg", "event"), (WL + "mill/*.ogg", "bed"),
        (WL + "sawmill/*.ogg", "event"), (WL + "smiths/*.ogg", "event"), (WL + "metal/furnace.ogg", "bed"),
        (WL + "hammering/*.ogg", "event"))),
    Package("tuxpaint-stamps-default", "2022.06.04-1", "GPL-2", (
        (TP + "animals/*[a-z].ogg", "event"), (TP + "household/*[a-z].ogg", "event"),
        (TP + "vehicles/*[a-z].ogg", "event"), (TP + "naturalforces/*[a-z].ogg", "event"),
        *((TP + f"animals/*_desc_{lang}.ogg", "speech") for lang in ("fr", "es", "ru", "ca", "ro", "el", "bg", "da")))),
    Package("alsa-utils", "1.2.8-1", "GPL-2", (("./usr/share/sounds/alsa/[FRS]*.wav", "speech"),)),
)


def _kind(member: str, pkg: Package) -> str | None:
    if "_desc" in member and not member.endswith(tuple(f"_desc_{x}.ogg" for x in ("fr", "es", "ru", "ca", "ro", "el", "bg", "da"))):
        return None  # descriptions in other spellings: the eight languages above are plenty
    for pattern, kind in pkg.take:
        if fnmatch.fnmatch(member, pattern) and (kind == "speech" or "_desc" not in member):
            return kind
    return None


def _mono32k(path: Path) -> np.ndarray:
    x, sr = sf.read(path, dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    g = gcd(SR, sr)
    return resample_poly(x, SR // g, sr // g).astype(np.float32) if sr != SR else x


def fetch(cache: Path) -> Path:
    """The sound cache in ``cache``, downloaded and converted on first use; returns ``cache``."""
    if (cache / "index.csv").exists():
        return cache
    rows, seen = [], set()
    with tempfile.TemporaryDirectory() as tmp:
        for pkg in PACKAGES:
            got = subprocess.run(["apt-get", "download", f"{pkg.name}={pkg.version}"], cwd=tmp,
                                 capture_output=True, text=True)
            if got.returncode:
                raise SystemExit(f"error: apt-get download {pkg.name}={pkg.version} failed: {got.stderr.strip()}")
            deb = next(Path(tmp).glob(f"{pkg.name}_*.deb"))
            root = Path(tmp) / pkg.name
            data = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
            with tarfile.open(fileobj=data.stdout, mode="r|") as tar:
                for m in tar:
                    wanted = m.isfile() and (_kind(m.name, pkg) or m.name.endswith(f"doc/{pkg.name}/copyright"))
                    if wanted:
                        tar.extract(m, root, filter="data")
            data.wait()
            deb.unlink()
            (cache / "licences").mkdir(parents=True, exist_ok=True)
            shutil.copy(next(root.rglob("copyright")), cache / "licences" / f"{pkg.name}.copyright")
            for f in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".ogg", ".wav")):
                member = "./" + str(f.relative_to(root))
                digest = hashlib.sha256(f.read_bytes()).hexdigest()
                if digest in seen:
                    continue  # the same clip ships in several tilesets
                seen.add(digest)
                kind = _kind(member, pkg)
                x = _mono32k(f)
                if len(x) < SR // 4 or np.abs(x).max() < 1e-4:
                    continue
                if kind == "bed" and len(x) < BED_SECONDS * SR:
                    kind = "event"  # looped, a short ambience repeats audibly: it is a sound event instead
                name = f"{kind}/{pkg.name}-{'-'.join(f.relative_to(root).parts[-3:])}".rsplit(".", 1)[0] + ".flac"
                (cache / kind).mkdir(parents=True, exist_ok=True)
                sf.write(cache / name, x / np.abs(x).max() * 0.9, SR)
                rows.append((name, kind, pkg.name, pkg.version, pkg.licence, member[2:], round(len(x) / SR, 2)))
            shutil.rmtree(root)
    (cache / "README.md").write_text(__doc__.split("\n\n")[1] + "\n\n" + __doc__.split("\n\n")[2] + "\n")
    with open(cache / "index.csv.tmp", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", "kind", "package", "version", "licence", "source", "seconds"])
        w.writerows(rows)
    (cache / "index.csv.tmp").rename(cache / "index.csv")
    return cache


def load(cache: Path) -> dict[str, list[np.ndarray]]:
    """kind -> the clips of that kind (32 kHz mono float32), in index order."""
    out: dict[str, list[np.ndarray]] = {k: [] for k in KINDS}
    with open(cache / "index.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            out[row["kind"]].append(sf.read(cache / row["file"], dtype="float32")[0])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "hawk" / "kit-sounds")
    args = p.parse_args()
    cache = fetch(args.cache.expanduser().resolve())
    with open(cache / "index.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for kind in KINDS:
        secs = [float(r["seconds"]) for r in rows if r["kind"] == kind]
        print(f"{kind}: {len(secs)} clips, {sum(secs) / 60:.1f} min")
    print("in", cache)


if __name__ == "__main__":
    main()
