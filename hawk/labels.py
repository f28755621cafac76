"""Labels from segment scores, and the files people open them in.

- Audacity label files ``<stem>_<suffix>.txt``: ``start<TAB>end<TAB>CODE;score`` (HawkEars' format;
  File > Import > Labels in Audacity);
- one CSV per run: ``filename,start_time,end_time,class_name,class_code,score``;
- Raven selection tables ``<stem>.selections.txt`` (Raven Pro / Lite: File > Open Selection Table).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hawk.fsutil import atomic_open

CSV_FIELDS = ["filename", "start_time", "end_time", "class_name", "class_code", "score"]
RAVEN_FIELDS = ["Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)", "High Freq (Hz)",
                "Species Code", "Common Name", "Score"]


@dataclass(frozen=True)
class Label:
    start: float
    end: float
    code: str
    name: str
    score: float


def make_labels(offsets: np.ndarray, scores: np.ndarray, classes: list[tuple[str, str]], segment_len: float,
                min_score: float = 0.8, merge: bool = True, ignore: Iterable[str] = ("Noise", "Other"),
                duration: float | None = None) -> list[Label]:
    """A label for every segment and class scoring at least ``min_score`` (classes in ``ignore``, by code
    or name, never labelled). With ``merge``, overlapping or touching labels of one class become one,
    scored by their maximum. Ends are clipped to ``duration`` when given."""
    skip = set(ignore)
    out: list[Label] = []
    for k, (name, code) in enumerate(classes):
        if code in skip or name in skip:
            continue
        current: Label | None = None
        for i in np.flatnonzero(scores[:, k] >= min_score):
            start = float(offsets[i])
            end = start + segment_len if duration is None else min(start + segment_len, duration)
            score = float(scores[i, k])
            if merge and current is not None and start <= current.end + 1e-6:
                current = Label(current.start, max(current.end, end), code, name, max(current.score, score))
                continue
            if current is not None:
                out.append(current)
            current = Label(start, end, code, name, score)
        if current is not None:
            out.append(current)
    return sorted(out, key=lambda lb: (lb.start, lb.code))


def write_audacity(path: Path, labels: list[Label], durable: bool = True) -> None:
    with atomic_open(path, "w", durable, encoding="utf-8") as f:
        for lb in labels:
            f.write(f"{lb.start:.2f}\t{lb.end:.2f}\t{lb.code};{lb.score:.3f}\n")


def read_audacity(path: Path) -> list[tuple[float, float, str, float]]:
    """(start, end, code, score) per line of an Audacity label file written by hawk or HawkEars."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("\\"):  # "\\" lines are Audacity's frequency rows
            continue
        start, end, text = line.split("\t")
        code, _, score = text.rpartition(";")
        out.append((float(start), float(end), code, float(score)))
    return out


def write_raven(path: Path, labels: list[Label], low_hz: float, high_hz: float, durable: bool = True) -> None:
    with atomic_open(path, "w", durable, newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(RAVEN_FIELDS)
        for i, lb in enumerate(labels, 1):
            w.writerow([i, "Spectrogram 1", 1, f"{lb.start:.3f}", f"{lb.end:.3f}", f"{low_hz:.1f}", f"{high_hz:.1f}",
                        lb.code, lb.name, f"{lb.score:.4f}"])


def read_raven(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def run_csv_row(filename: str, lb: Label) -> list[str]:
    """One row of the run's CSV (:data:`CSV_FIELDS`)."""
    return [filename, f"{lb.start:.2f}", f"{lb.end:.2f}", lb.name, lb.code, f"{lb.score:.3f}"]
