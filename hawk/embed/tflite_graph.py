"""Reading a TFLite model's constants and cutting a part of its graph out as a model of its own.

Why: BirdNET's model computes its own mel spectrogram with an RFFT operator that runs slowly on
LiteRT and that OpenVINO cannot read. Cutting the network after that front end lets the front end
run as one matrix product (``birdnet_front``) and the network on the fastest runtime there is.
The file is edited through LiteRT's own flatbuffer schema; weights are copied unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

_DTYPES = {"FLOAT32": np.float32, "INT32": np.int32, "INT64": np.int64}


class Graph:
    """One TFLite model file: tensors by name, constant values, and sub-models between two tensors."""

    def __init__(self, path: str | Path):
        from ai_edge_litert import schema_py_generated as schema

        self._schema = schema
        self.data = Path(path).read_bytes()
        self._model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(self.data, 0))
        graph = self._model.subgraphs[0]
        self._names = {t.name.decode(): i for i, t in enumerate(graph.tensors)}
        self._types = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}

    def tensor(self, name: str) -> int:
        try:
            return self._names[name]
        except KeyError:
            raise KeyError(f"the model has no tensor {name!r}") from None

    def constant(self, name: str) -> np.ndarray:
        """The value stored in the file for the constant tensor ``name``."""
        t = self._model.subgraphs[0].tensors[self.tensor(name)]
        raw = self._model.buffers[t.buffer].data
        if raw is None:
            raise KeyError(f"tensor {name!r} is computed, not stored")
        return np.frombuffer(np.asarray(raw, np.uint8).tobytes(), _DTYPES[self._types[t.type]]).reshape(t.shape)

    def cut(self, first: str, last: str, first_shape: list[int]) -> bytes:
        """A model whose input is tensor ``first`` (shape ``first_shape``, -1 for any batch) and whose
        output is tensor ``last``: the operators from the one that reads ``first`` up to the one that
        writes ``last``, in the file's (topological) order."""
        import flatbuffers

        model = self._schema.ModelT.InitFromObj(self._schema.Model.GetRootAsModel(self.data, 0))
        graph = model.subgraphs[0]
        start, stop = self.tensor(first), self.tensor(last)
        ops = graph.operators
        begin = next(i for i, op in enumerate(ops) if start in op.inputs)
        end = next(i for i, op in enumerate(ops) if stop in op.outputs)
        graph.operators = ops[begin:end + 1]
        graph.inputs, graph.outputs = [start], [stop]
        tensor = graph.tensors[start]
        tensor.shape = [max(d, 1) for d in first_shape]
        tensor.shapeSignature = list(first_shape)
        builder = flatbuffers.Builder(len(self.data) + (1 << 20))
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())
