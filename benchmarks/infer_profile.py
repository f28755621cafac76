"""Where infer's time goes, and how far from the machine's limit it stands.

    python benchmarks/infer_profile.py [--files 10] [--seconds 60] [--model custom_hgnet_2]

On ten one-minute recordings at HawkEars' settings (3 s segments, 1.5 s overlap), one step at a time
on one thread per step as infer runs them: decoding with resampling, the spectrograms (STFT and mel),
and the network on each runtime: PyTorch eager FP32, BF16 (autocast; AMX or AVX512-BF16 where the CPU
has them) and ``torch.compile``, ONNX Runtime, and OpenVINO in FP32 and BF16 (hawk/runtime.py), and INT8: the ONNX export quantized
statically (ONNX Runtime's QDQ quantizer, per channel, calibrated on 256 of the windows), run on ONNX
Runtime and on OpenVINO (which runs QDQ models in INT8). The network's FLOPs per window come from PyTorch's FLOP counter, and what the CPU
can do from a large matrix product in each precision, so the network's speed is also a share of the
machine's limit. Each runtime's scores are compared with eager FP32's (infer's accuracy rule: 1e-3),
on a trained checkpoint given with ``--ckpt`` (random weights hide precision errors: their outputs
barely move).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hawk import runtime
from hawk.audio import iter_mono
from hawk.ckpt import load_checkpoint, model_from_checkpoint, save_checkpoint
from hawk.download.demo import synth_recording, write_audio
from hawk.infer import Ensemble, file_segments, fuse_for_inference, segment_settings
from hawk.models import create_model
from hawk.spectrogram import SpecSettings
from results import record


def seconds(fn, repeat: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def matmul_gflops(dtype: torch.dtype, n: int = 4096) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    return 2 * n**3 / seconds(lambda: a @ b, 5) / 1e9


def quantized(onnx: Path, calibration: np.ndarray, out: Path) -> Path:
    """``onnx`` with INT8 weights and activations (QDQ, per channel), calibrated on ``calibration``
    (uint8 spectrograms, scaled to [0, 1] as infer feeds the network)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Windows(CalibrationDataReader):
        def __init__(self) -> None:
            x = calibration[:, None].astype(np.float32) / np.float32(255)
            self.batches = iter([{"x": x[i : i + 16]} for i in range(0, len(x), 16)])

        def get_next(self):
            return next(self.batches, None)

    prepared = out.with_suffix(".prep.onnx")
    quant_pre_process(str(onnx), str(prepared))
    quantize_static(str(prepared), str(out), Windows(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=10)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--model", default="custom_hgnet_2")
    p.add_argument("--ckpt", type=Path, help="a trained checkpoint of --model (else random weights)")
    args = p.parse_args()
    classes = [(f"Class {i}", f"C{i:03d}") for i in range(50)]
    settings = segment_settings(SpecSettings(), 1.5)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = []
        for i in range(args.files):
            files.append(tmp / f"r{i:02d}.flac")
            write_audio(files[-1], synth_recording("warble", i, args.seconds, 44100), 44100)
        ckpt = args.ckpt or tmp / "m.ckpt"
        if not args.ckpt:
            save_checkpoint(ckpt, args.model, create_model(args.model, len(classes)), classes, SpecSettings().to_dict())
        os.environ["HAWK_CACHE"] = str(tmp / "cache")
        ens = Ensemble.load(ckpt, "cpu", "torch")
        audio = args.files * args.seconds

        def decode() -> None:
            for f in files:
                for _ in iter_mono(f, settings.sample_rate)[1]:
                    pass

        t_decode = seconds(decode)
        specs = []
        t_segments = seconds(lambda: specs.extend(file_segments(str(f), settings)["specs"] for f in files))
        x = np.concatenate(specs)
        windows = len(x)
        ens.scores(x[:64])  # warm-up, as every row below gets
        t_fp32 = seconds(lambda: ens.scores(x))
        ref = ens.scores(x)
        rows = {"eager fp32": (t_fp32, 0.0)}

        def row(name: str, scores) -> None:
            scores(x[:64])  # warm-up: first-call allocations and compilation
            rows[name] = (seconds(lambda: scores(x)), float(np.abs(scores(x) - ref).max()))

        with torch.autocast("cpu", dtype=torch.bfloat16):
            row("eager bf16 (autocast)", ens.scores)
        eager = ens.models
        model = fuse_for_inference(model_from_checkpoint(load_checkpoint(ckpt)))
        onnx = runtime.export_onnx(model, (settings.spec_height, settings.spec_width), "profile")
        threads = torch.get_num_threads()
        int8 = quantized(onnx, x[:256], tmp / "int8.onnx")
        for name, make in [("onnxruntime fp32", lambda: runtime.onnxruntime_runner(onnx, threads)),
                           ("openvino fp32", lambda: runtime.openvino_runner(onnx, threads)),
                           ("openvino bf16", lambda: runtime.openvino_runner(onnx, threads, "bf16")),
                           ("onnxruntime int8", lambda: runtime.onnxruntime_runner(int8, threads)),
                           ("openvino int8", lambda: runtime.openvino_runner(int8, threads))]:
            try:
                ens.models = [make()]
                row(name, ens.scores)
            except runtime.RuntimeUnavailable as e:
                print(f"{name}: not available here ({e})")
        # last: torch.compile leaves compiler worker processes behind that would slow the rows after it
        try:
            compiled = torch.compile(model)
            ens.models = [runtime.torch_runner(compiled, "cpu")]
            row("torch.compile fp32", ens.scores)
        except Exception as e:  # a missing compiler is a result too
            print(f"torch.compile: not available here ({type(e).__name__}: {e})")
        ens.models = eager
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with counter, torch.inference_mode():
            model(torch.zeros(1, 1, settings.spec_height, settings.spec_width))
        flops = counter.get_total_flops()
        peak32, peak16 = matmul_gflops(torch.float32), matmul_gflops(torch.bfloat16)

    whole = t_segments + t_fp32
    print(f"{args.files} recordings, {audio / 60:.0f} min of audio, {windows} windows, {torch.get_num_threads()} threads\n")
    print(f"decode + resample     {t_decode:7.2f} s  {audio / t_decode:7.0f}x real time")
    print(f"+ spectrograms        {t_segments:7.2f} s  {audio / t_segments:7.0f}x  (STFT and mel: {t_segments - t_decode:.2f} s)")
    print(f"network (eager fp32)  {t_fp32:7.2f} s  {audio / t_fp32:7.0f}x  {windows / t_fp32:.0f} windows/s")
    print(f"the two in series     {whole:7.2f} s  {audio / whole:7.0f}x  (infer overlaps them in two threads)\n")
    print(f"network: {flops / 1e9:.2f} GFLOPs per window; the CPU's matrix product: {peak32:.0f} GFLOP/s fp32, "
          f"{peak16:.0f} GFLOP/s bf16\n")
    print(f"{'runtime':<24} {'seconds':>8} {'windows/s':>10} {'GFLOP/s':>8} {'of the peak':>12} {'max |diff|':>11}")
    figures = {"audio_seconds": audio, "windows": windows, "threads": torch.get_num_threads(),
               "decode_resample_s": round(t_decode, 2), "spectrograms_s": round(t_segments - t_decode, 2),
               "gflops_per_window": round(flops / 1e9, 3), "matmul_peak_gflops": {"fp32": round(peak32), "bf16": round(peak16)},
               "runtimes": {}}
    for name, (t, diff) in rows.items():
        rate = windows * flops / t / 1e9
        peak = peak16 if "bf16" in name else None if "int8" in name else peak32  # no INT8 peak is measured
        verdict = "meets" if diff <= runtime.TOLERANCE else "breaks"
        share = f"{rate / peak:>11.1%}" if peak else f"{'':>11}"
        print(f"{name:<24} {t:>7.2f}s {windows / t:>10.0f} {rate:>8.0f} {share} {diff:>11.1e}  {verdict} the rule")
        figures["runtimes"][name] = {"seconds": round(t, 2), "windows_per_s": round(windows / t), "x_real_time":
                                     round(audio / t), "share_of_peak": round(rate / peak, 3) if peak else None, "max_abs_diff": diff,
                                     "meets_rule": diff <= runtime.TOLERANCE}
    figures["weights"] = args.ckpt.name if args.ckpt else "random"
    record("infer-profile", f"Where infer's time goes ({args.model}, 3 s segments, 1.5 s overlap)", figures,
           command="python benchmarks/infer_profile.py")


if __name__ == "__main__":
    main()
