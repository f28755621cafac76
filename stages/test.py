"""test: metrics of the checkpoint ensemble on annotated test recordings (the seed's testers).

Scores every 3 s segment once (no overlap, no threshold), matches it to the annotations per sound,
per minute or per recording (from the annotation columns), and reports macro/micro average precision
(PR-AUC), ROC-AUC, per-class AP, and precision and recall at test.threshold, for the annotated classes
and for all trained classes. Writes metrics/test.json (`dvc exp show`), metrics/test_pr.csv
(`dvc plots show`), PNG plots and per-class / per-recording CSVs under metrics/, and logs them all
to the MLflow run(s) of the checkpoints under test.

Annotations are checked first: a bad row (no end_time, an end before its start, a time that is not a
number) stops the stage with its file and line. Rows naming a recording not under test.recordings or
a code the model lacks are listed in metrics/test_unmatched.csv and counted in test.json; a file
with no matching row at all is an error.

    python -m stages.test [test.annotations=my/annotations.csv test.recordings=my/recordings]
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from hawk.evaluate import (build_table, compute_metrics, fit_platt, match_annotations, per_class, per_recording,
                           plot_all, pr_points, read_annotations, threshold_curve, write_csv)
from hawk.fsutil import atomic_open
from hawk.infer import Ensemble, find_recordings, score_files
from hawk.progress import progress_bar
from stages._cli import load_config, parser, run, tracking_path


def main() -> None:
    cfg = load_config(parser(__doc__).parse_args())
    c = cfg.test
    kind, rows = read_annotations(c.annotations)  # first: a bad file fails before any model loads
    files = find_recordings(c.recordings)
    ensemble = Ensemble.load(cfg.paths.ckpt, str(cfg.infer.device), str(cfg.infer.runtime))
    codes = ensemble.codes
    rows, unmatched = match_annotations(c.annotations, rows, files, codes)
    with progress_bar(len(files), "test", bool(c.progress)) as bar:
        scored = score_files(files, ensemble, 0.0, (float(cfg.infer.calibration.a), float(cfg.infer.calibration.b)),
                             int(cfg.infer.batch_size), int(cfg.infer.prefetch), bar)
    ignore = set(cfg.infer.ignore)
    table = build_table(kind, rows, scored.files, codes, ensemble.settings.segment_len, float(c.min_overlap))
    annotated_codes = {r["species"] for r in rows} & set(codes)
    trained = [k for k, (n, code) in enumerate(ensemble.classes) if code not in ignore and n not in ignore]
    annotated = [k for k in trained if codes[k] in annotated_codes]
    th = float(c.threshold)
    unknown = Counter(u["reason"] for u in unmatched)
    metrics = {"kind": kind, "recordings": len(scored.files), "skipped": len(scored.skipped), "rows": len(table.recordings),
               "annotations": {"matched": len(rows), "unknown_recording": unknown["unknown recording"],
                               "unknown_class": unknown["unknown class code"]},
               "annotated": compute_metrics(table.scores, table.truth, annotated, th),
               "trained": compute_metrics(table.scores, table.truth, trained, th),
               "platt": fit_platt(table.scores[:, trained], table.truth[:, trained])}  # for infer.calibration
    out = Path(cfg.paths.metrics)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_open(out / "test.json", "w", encoding="utf-8") as f:
        json.dump(metrics, f, indent=2)
    pr_a = pr_points(table.scores[:, annotated], table.truth[:, annotated])
    pr_t = pr_points(table.scores[:, trained], table.truth[:, trained])
    write_csv(out / "test_pr.csv", pr_a)
    write_csv(out / "test_unmatched.csv", unmatched, ["line", "recording", "species", "reason"])
    classes_rows = per_class(table.scores, table.truth, ensemble.classes, annotated_codes, th)
    write_csv(out / "test_per_class.csv", [r for r in classes_rows if r["code"] not in ignore])
    write_csv(out / "test_per_recording.csv", per_recording(table, trained, codes, th))
    thresholds = threshold_curve(table.scores[:, annotated], table.truth[:, annotated])
    pngs = plot_all(out, pr_a, pr_t, [r for r in classes_rows if r["code"] not in ignore], thresholds)
    _log_to_mlflow(tracking_path(cfg.tracking.mlflow_uri), ensemble.mlflow_run_ids, metrics,
                   [out / "test.json", out / "test_pr.csv", out / "test_per_class.csv", out / "test_per_recording.csv",
                    *pngs])
    a = metrics["annotated"]
    if unmatched:
        print(f"{len(unmatched)} annotation rows match no test recording or model class: see {out / 'test_unmatched.csv'}")
    r = {k: v if v is None else round(v, 3) for k, v in a.items() if isinstance(v, float | None)}
    print(f"test ({kind}, {len(scored.files)} recordings, {len(scored.skipped)} skipped): annotated classes macro AP "
          f"{r['macro_ap']}, micro AP {r['micro_ap']}, ROC-AUC {r['macro_roc_auc']}; precision {r['precision']}, "
          f"recall {r['recall']} at {th} (all figures: {out / 'test.json'})")


def _log_to_mlflow(uri: str, run_ids: list[str], metrics: dict, files: list[Path]) -> None:
    if not run_ids:
        return
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    for run_id in run_ids:
        try:
            client.get_run(run_id)
        except Exception:  # a checkpoint from another project's store: nothing to attach to
            continue
        for group in ("annotated", "trained"):
            for k, v in metrics[group].items():
                if isinstance(v, float):
                    client.log_metric(run_id, f"test_{group}_{k}", v)
        for f in files:
            client.log_artifact(run_id, str(f), "test")


if __name__ == "__main__":
    run(main)
