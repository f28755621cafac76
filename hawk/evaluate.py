"""Testing a model on annotated recordings: per sound, per minute or per recording (the seed's testers).

Scores come from inference with no overlap and no threshold, so each 3 s segment is scored once.
Per sound, an annotation counts for every segment it overlaps by at least ``min_overlap`` seconds (or
its whole length when shorter), as HawkEars matches them. Per minute and per recording, a class's
score is its highest segment score in that minute or recording. Metrics (scikit-learn) are reported
for the annotated classes and for all trained classes (the model's class list).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hawk.errors import HawkError
from hawk.fsutil import atomic_open
from hawk.infer import FileScores

KINDS = {
    "per_sound": ["recording", "species", "start_time", "end_time"],
    "per_minute": ["recording", "minute", "species"],
    "per_recording": ["recording", "species"],
}


class AnnotationError(HawkError, ValueError):
    pass


def read_annotations(path: str | Path) -> tuple[str, list[dict[str, str]]]:
    """(kind, rows), every row checked; each row gains ``line`` (its line in the file) for reports.

    The kind follows from the columns (see ``KINDS``). A column of a richer kind without its partner
    (``start_time`` without ``end_time``) is an error, never a quiet fall-back to a coarser test, and
    so is any row with a missing name, a time that is not a number or an end before its start."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            cols = {c.strip() for c in reader.fieldnames or []}
            rows = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in reader]
    except FileNotFoundError:
        raise AnnotationError(f"{path}: no such annotations file") from None
    kind = _kind(path, cols)
    errors = []
    for i, row in enumerate(rows):
        row["line"] = str(i + 2)  # the header is line 1
        problem = _row_problem(kind, row)
        if problem:
            errors.append(f"line {row['line']}: {problem}")
    if errors:
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise AnnotationError(f"{path}: " + "; ".join(errors[:5]) + more)
    return kind, rows


def _kind(path: str | Path, cols: set[str]) -> str:
    if {"recording", "species"} - cols:
        raise AnnotationError(f"{path}: columns {sorted(cols)} match no annotation format; expected one of "
                              + "; ".join(",".join(v) for v in KINDS.values()))
    if cols & {"start_time", "end_time"}:
        missing = {"start_time", "end_time"} - cols
        if missing:
            raise AnnotationError(f"{path}: per-sound annotations need both start_time and end_time; "
                                  f"{', '.join(sorted(missing))} is missing")
        return "per_sound"
    return "per_minute" if "minute" in cols else "per_recording"


def _row_problem(kind: str, row: dict[str, str]) -> str:
    for col in ("recording", "species"):
        if not row.get(col):
            return f"empty {col}"
    if kind == "per_sound":
        try:
            a, b = float(row["start_time"]), float(row["end_time"])
        except ValueError:
            return f"start_time {row['start_time']!r} / end_time {row['end_time']!r}: not a number"
        if not (math.isfinite(a) and math.isfinite(b)) or a < 0:
            return f"start_time {row['start_time']} / end_time {row['end_time']}: times must be finite and >= 0"
        if b <= a:
            return f"end_time {row['end_time']} is not after start_time {row['start_time']}"
    if kind == "per_minute" and not row["minute"].isdigit():
        return f"minute {row['minute']!r} is not a whole number >= 0"
    return ""


def match_annotations(path: str | Path, rows: list[dict[str, str]], recordings: list[Path], codes: list[str],
                      ) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(rows that name a test recording and a class of the model, the others with the reason).

    Unmatched rows are reported, not dropped in silence; a file none of whose rows match is an error
    (the wrong file, or annotations of another model's classes)."""
    stems, known = {Path(r).stem for r in recordings}, set(codes)
    matched, unmatched = [], []
    for row in rows:
        if Path(row["recording"]).stem not in stems:
            unmatched.append({**row, "reason": "unknown recording"})
        elif row["species"] not in known:
            unmatched.append({**row, "reason": "unknown class code"})
        else:
            matched.append(row)
    if rows and not matched:
        raise AnnotationError(f"{path}: none of its {len(rows)} rows names both a test recording and a class of the "
                              f"model (e.g. line {rows[0]['line']}: {rows[0]['recording']!r}, {rows[0]['species']!r})")
    return matched, unmatched


@dataclass
class Table:
    """Rows to score: one per segment, minute or recording, with the recording each belongs to."""

    recordings: list[str]
    keys: list[Any]
    scores: np.ndarray
    truth: np.ndarray


def build_table(kind: str, rows: list[dict[str, str]], files: list[FileScores], codes: list[str],
                segment_len: float, min_overlap: float = 0.3) -> Table:
    col = {c: k for k, c in enumerate(codes)}
    by_rec: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_rec.setdefault(Path(r["recording"]).stem, []).append(r)
    recs, keys, scores, truth = [], [], [], []
    for f in files:
        stem = f.path.stem
        ann = [r for r in by_rec.get(stem, []) if r["species"] in col]
        if kind == "per_sound":
            t = np.zeros((len(f.offsets), len(codes)), np.float32)
            for r in ann:
                a, b = float(r["start_time"]), float(r["end_time"])
                need = min(min_overlap, b - a)
                ov = np.minimum(b, f.offsets + segment_len) - np.maximum(a, f.offsets)
                t[ov >= need - 1e-9, col[r["species"]]] = 1
            recs += [stem] * len(f.offsets)
            keys += [float(o) for o in f.offsets]
            scores.append(f.scores)
            truth.append(t)
        elif kind == "per_minute":
            minutes = (f.offsets // 60).astype(int)
            for m in range(int(minutes.max()) + 1 if len(minutes) else 0):
                sel = minutes == m
                t = np.zeros(len(codes), np.float32)
                for r in ann:
                    if int(float(r["minute"])) == m:
                        t[col[r["species"]]] = 1
                recs.append(stem)
                keys.append(m)
                scores.append(f.scores[sel].max(axis=0, keepdims=True))
                truth.append(t[None])
        else:
            t = np.zeros(len(codes), np.float32)
            for r in ann:
                t[col[r["species"]]] = 1
            recs.append(stem)
            keys.append("")
            scores.append(f.scores.max(axis=0, keepdims=True))
            truth.append(t[None])
    k = len(codes)
    return Table(recs, keys, np.concatenate(scores) if scores else np.zeros((0, k)),
                 np.concatenate(truth) if truth else np.zeros((0, k)))


def _safe(fn, *args, **kwargs) -> float | None:
    try:
        v = float(fn(*args, **kwargs))
        return None if math.isnan(v) else v
    except ValueError:
        return None


def confusion(scores: np.ndarray, truth: np.ndarray, threshold: float) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives) at ``threshold``."""
    pred = scores >= threshold
    pos = truth > 0
    return int((pred & pos).sum()), int((pred & ~pos).sum()), int((~pred & pos).sum())


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def compute_metrics(scores: np.ndarray, truth: np.ndarray, columns: list[int], threshold: float) -> dict[str, Any]:
    """Macro and micro average precision (PR-AUC), ROC-AUC, precision and recall at ``threshold``, over
    ``columns``; macro figures use the columns that have positives."""
    from sklearn.metrics import average_precision_score, roc_auc_score  # here: sklearn takes seconds to import

    s, t = scores[:, columns], truth[:, columns]
    pos = t.sum(axis=0) > 0
    out: dict[str, Any] = {"classes": len(columns), "positives": int(t.sum())}
    out["macro_ap"] = _safe(average_precision_score, t[:, pos], s[:, pos], average="macro") if pos.any() else None
    out["micro_ap"] = _safe(average_precision_score, t.ravel(), s.ravel()) if pos.any() else None
    out["macro_roc_auc"] = _safe(roc_auc_score, t[:, pos], s[:, pos], average="macro") if pos.any() else None
    out["micro_roc_auc"] = _safe(roc_auc_score, t.ravel(), s.ravel()) if pos.any() else None
    tp, fp, fn = confusion(s, t, threshold)
    out["threshold"] = threshold
    out["precision"] = _ratio(tp, tp + fp)
    out["recall"] = _ratio(tp, tp + fn)
    return out


def per_class(scores: np.ndarray, truth: np.ndarray, classes: list[tuple[str, str]], annotated: set[str],
              threshold: float) -> list[dict[str, Any]]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    rows = []
    for k, (name, code) in enumerate(classes):
        s, t = scores[:, k], truth[:, k]
        tp, fp, fn = confusion(s, t, threshold)
        has = t.sum() > 0
        rows.append({"code": code, "name": name, "annotated": code in annotated, "positives": int(t.sum()),
                     "ap": _safe(average_precision_score, t, s) if has else None,
                     "roc_auc": _safe(roc_auc_score, t, s) if has and not t.all() else None,
                     "precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn)})
    return rows


def per_recording(table: Table, columns: list[int], codes: list[str], threshold: float) -> list[dict[str, Any]]:
    rows = []
    for rec in dict.fromkeys(table.recordings):
        sel = np.array([r == rec for r in table.recordings])
        s, t = table.scores[sel][:, columns], table.truth[sel][:, columns]
        tp, fp, fn = confusion(s, t, threshold)
        rows.append({"recording": rec, "rows": int(sel.sum()),
                     "annotated": " ".join(codes[c] for c, p in zip(columns, t.any(axis=0)) if p),
                     "detected": " ".join(codes[c] for c, p in zip(columns, (s >= threshold).any(axis=0)) if p),
                     "tp": tp, "fp": fp, "fn": fn})
    return rows


def pr_points(scores: np.ndarray, truth: np.ndarray, max_points: int = 200) -> list[dict[str, float]]:
    """Micro-averaged precision-recall curve, thinned to at most ``max_points`` for plotting."""
    from sklearn.metrics import precision_recall_curve

    if truth.sum() == 0:
        return []
    p, r, th = precision_recall_curve(truth.ravel(), scores.ravel())
    idx = np.unique(np.linspace(0, len(th) - 1, min(max_points, len(th))).astype(int))
    return [{"recall": float(r[i]), "precision": float(p[i]), "threshold": float(th[i])} for i in idx]


def threshold_curve(scores: np.ndarray, truth: np.ndarray) -> list[dict[str, float]]:
    out = []
    for th in np.round(np.arange(0.05, 1.0, 0.05), 2):
        tp, fp, fn = confusion(scores, truth, th)
        out.append({"threshold": float(th), "precision": float(tp / (tp + fp)) if tp + fp else 1.0,
                    "recall": float(tp / (tp + fn)) if tp + fn else 0.0})
    return out


def write_csv(path: Path, rows: list[dict[str, Any]], fields: list[str] | None = None) -> None:
    """Rows as CSV; with ``fields``, just those columns, and a header even when there are no rows."""
    with atomic_open(path, "w", newline="", encoding="utf-8") as f:
        if rows or fields:
            w = csv.DictWriter(f, fields or list(rows[0]), extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_all(out_dir: Path, pr_annotated: list[dict], pr_trained: list[dict], classes_rows: list[dict],
             thresholds: list[dict]) -> list[Path]:
    """PR curves, per-class AP bars, precision/recall per threshold, as PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, ax = plt.subplots(figsize=(5, 4.2))
    for pts, label in ((pr_annotated, "annotated classes"), (pr_trained, "all trained classes")):
        if pts:
            ax.plot([p["recall"] for p in pts], [p["precision"] for p in pts], label=label)
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="precision-recall (micro)")
    ax.grid(alpha=0.3)
    ax.legend()
    paths.append(_save(fig, out_dir / "test_pr_curve.png"))
    rows = [r for r in classes_rows if r["ap"] is not None]
    fig, ax = plt.subplots(figsize=(max(4, 0.5 * len(rows) + 1.5), 3.6))
    ax.bar([r["code"] for r in rows], [r["ap"] for r in rows], color="tab:blue")
    ax.set(ylabel="average precision", ylim=(0, 1.02), title="AP per class")
    ax.tick_params(axis="x", rotation=45)
    paths.append(_save(fig, out_dir / "test_ap_per_class.png"))
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.plot([t["threshold"] for t in thresholds], [t["precision"] for t in thresholds], "-o", label="precision")
    ax.plot([t["threshold"] for t in thresholds], [t["recall"] for t in thresholds], "-s", label="recall")
    ax.set(xlabel="score threshold", ylim=(0, 1.02), title="precision and recall per threshold")
    ax.grid(alpha=0.3)
    ax.legend()
    paths.append(_save(fig, out_dir / "test_threshold.png"))
    return paths


def fit_platt(scores: np.ndarray, truth: np.ndarray) -> dict[str, float] | None:
    """Platt parameters (a, b) that make ``sigmoid(a * logit(score) + b)`` match the annotations, for
    ``infer.calibration``. Fit on data the model was not trained on; None without both outcomes."""
    from sklearn.linear_model import LogisticRegression

    y = truth.ravel() > 0
    if y.all() or not y.any():
        return None
    s = np.clip(scores.ravel().astype(np.float64), 1e-7, 1 - 1e-7)
    lr = LogisticRegression(C=1e6).fit(np.log(s / (1 - s))[:, None], y)
    return {"a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])}
