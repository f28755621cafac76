"""What a run of infer has finished, so that a rerun (after an interruption, or on a grown archive)
scores only what is left.

One small JSON record per recording, written after that recording's label files: the run key, the
audio seconds and the labels. A record counts only when its key matches, and the key is the SHA-256 of
the checkpoints' bytes plus every setting that changes the labels, so new weights or a new threshold
score everything again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from hawk.fsutil import atomic_open, sha256_file
from hawk.labels import Label

FOLDER = ".hawk-infer"


def run_key(checkpoints: list[Path], settings: dict[str, Any]) -> str:
    h = hashlib.sha256()
    for p in checkpoints:
        h.update(sha256_file(p).encode())
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return h.hexdigest()[:20]


class LabelRecords:
    """Records under ``<labels folder>/.hawk-infer/``, mirroring the recordings' relative paths."""

    def __init__(self, out: Path, key: str):
        self.root = Path(out) / FOLDER
        self.key = key

    def path(self, rel: Path) -> Path:
        return self.root / f"{rel}.json"

    def seconds(self, rel: Path) -> float | None:
        """The audio seconds of a finished recording, or None when it has no record of this key."""
        try:
            rec = json.loads(self.path(rel).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return float(rec["seconds"]) if rec.get("key") == self.key else None

    def done(self, rel: Path) -> bool:
        return self.seconds(rel) is not None

    def write(self, rel: Path, seconds: float, labels: list[Label]) -> None:
        rec = {"key": self.key, "seconds": seconds,
               "labels": [[lb.start, lb.end, lb.code, lb.name, lb.score] for lb in labels]}
        with atomic_open(self.path(rel), "w", encoding="utf-8") as f:
            json.dump(rec, f)

    def read(self, rel: Path) -> tuple[float, list[Label]]:
        rec = json.loads(self.path(rel).read_text(encoding="utf-8"))
        return float(rec["seconds"]), [Label(float(a), float(b), c, n, float(s)) for a, b, c, n, s in rec["labels"]]

    def forget(self, rel: Path) -> None:
        self.path(rel).unlink(missing_ok=True)
