"""field: data/field_queue/<CODE>/, what the model asks you about your own recordings.

After train, up to `doubt.field_recordings` of your recordings (`infer.input`, a seeded sample) are
scored in 3-s windows with the current model (models/ckpt), and per class up to `doubt.size`
windows are queued, in turn: the ones it is surest of (is that really the bird, at your site?) and
the ones it is least sure of (nearest `doubt.boundary`). Windows you already judged are not asked
again. Each folder holds one image per window and queue.csv (as the doubt stage's; `file` is the
recording's path under infer.input).

Review with `python -m stages.review --field CODE`: a yes writes the window's 3 s as a clip into
data/field/<CODE>/, which the next `dvc repro` makes a training row of that class (pickle), so
the model learns your sites, not only the recordings it was given. BirdNET's weights (the default
embedder) are licensed CC BY-NC-SA 4.0 (non-commercial, share alike).

    python -m stages.field [doubt.field_recordings=50]
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from hawk.audio import AudioError, read_mono
from hawk.doubt import DoubtSettings, candidates, field_verdicts, rank_field, write_queue
from hawk.infer import Ensemble, find_recordings, recordings_root, score_files
from hawk.settings import from_mapping
from hawk.spectrogram import SpectrogramMaker
from stages._cli import load_config, parser, run

def main() -> None:
    cfg = load_config(parser(__doc__).parse_args())
    settings = from_mapping(DoubtSettings, OmegaConf.to_container(cfg.doubt, resolve=True), "doubt")
    out = Path(cfg.paths.field_queue)
    ensemble = Ensemble.load(cfg.paths.ckpt, str(cfg.infer.device), str(cfg.infer.runtime))
    files = find_recordings(cfg.infer.input)
    if len(files) > settings.field_recordings:
        pick = np.random.default_rng(0).choice(len(files), settings.field_recordings, replace=False)
        files = [files[i] for i in sorted(pick)]
    root = recordings_root(cfg.infer.input, files)
    cal = (float(cfg.infer.calibration.a), float(cfg.infer.calibration.b))
    scored = score_files(files, ensemble, 0.0, cal, int(cfg.infer.batch_size))
    windows = [(str(f.path.relative_to(root)), float(o)) for f in scored.files for o in f.offsets]
    scores = np.concatenate([f.scores for f in scored.files]) if scored.files else np.zeros((0, len(ensemble.codes)))
    ignore = set(cfg.infer.ignore)
    queues = {}
    for code in ensemble.codes:
        if code in ignore:
            continue
        cands = candidates(scores, windows, ensemble.codes, code, set(), {})
        queues[code] = rank_field(cands, code, settings, set().union(*field_verdicts(Path(cfg.paths.field) / code)))
    tmp = out.with_name(f".{out.name}.part")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    specs = _spectrograms(root, {(d.window.file, d.window.offset) for q in queues.values() for d in q}, ensemble)
    for code, doubts in queues.items():
        write_queue(tmp / code, doubts, specs.items(), ensemble.settings)
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)
    for name, why in scored.skipped:
        print(f"skipped {name}: {why}")
    print(f"field: {len(scored.files)} of your recordings scored ({len(windows)} windows); "
          + ", ".join(f"{c} {len(q)}" for c, q in queues.items())
          + f" queued in {out}; review: python -m stages.review --field CODE")


def _spectrograms(root: Path, want: set[tuple[str, float]], ensemble: Ensemble) -> dict:
    """The spectrogram of each queued window, made from its recording as training's are."""
    s = ensemble.settings
    maker, out = SpectrogramMaker(s), {}
    for file in sorted({f for f, _ in want}):
        offsets = sorted(o for f, o in want if f == file)
        try:
            signal = read_mono(root / file, s.sample_rate)
        except (AudioError, OSError) as e:
            print(f"skipped {file}: {e}")
            continue
        out.update({(file, o): x for o, x in zip(offsets, maker.at(signal, offsets))})
    return out


if __name__ == "__main__":
    run(main)
