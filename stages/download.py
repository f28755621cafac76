"""download: fill data/recordings/<CODE>/ for one class from its configured sources.

Writes the recordings (XC<id>.<ext> from Xeno-canto, N<sound id>.<ext> from iNaturalist, the original
names for local folders), manifest.csv (provenance of every file), download_report.csv (what was left
out and why) and, for iNaturalist, inat.csv (sound id -> observation URL). Resumes: files already there
are not fetched again. Xeno-canto needs an API key in the XC_API_KEY environment variable.
A listing that fails after its retries, or a source that lists nothing (download.allow_empty=false),
ends the stage with exit status 2 after keeping what arrived, so DVC does not record it as done.

    python -m stages.download --code AMRO [download.max_per_class=50 ...]
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from hawk.download.run import DownloadOptions, download_class
from stages._cli import class_stage, run


def main() -> None:
    cfg, spec = class_stage(__doc__)
    opts = DownloadOptions.from_config(OmegaConf.to_container(cfg.download, resolve=True))
    out = Path(cfg.paths.recordings) / spec.code
    res = download_class(spec, out, opts)
    print(f"{spec.code}: {res.in_folder} recordings in {out} ({res.fetched} new this run), "
          f"{len(res.skipped)} skipped this run (see {out / 'download_report.csv'})")


if __name__ == "__main__":
    run(main)
