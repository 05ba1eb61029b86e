"""The face detector network under PyTorch and under ONNX Runtime, on this machine's cores.

    python benchmarks/detector_runtime.py [--pictures 40]

The shipped facedet weights are exported to ONNX (a temporary file) and both runtimes run the
same letterboxed pictures of web4 (up to 512 px a side, as charaid.models.facedet feeds them), one at a
time and in batches of 4 of one size. Prints milliseconds per picture and the largest difference
between the two runtimes' outputs. charaid ships whichever is faster (issue 16: ONNX Runtime
only where it measures faster).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402
from common import machine, table  # noqa: E402

from charaid.models import facedet  # noqa: E402
from charaid.pipeline.images import load_image  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pictures", type=int, default=40)
    args = ap.parse_args()
    import onnxruntime as ort
    import torch

    threads = torch.get_num_threads()
    paths = [p for _, p in datasets.web4()][:: max(1, 286 // args.pictures)][: args.pictures]
    arrays = [facedet.letterbox(load_image(p), 512)[0] for p in paths]
    net = facedet.load_network()
    onnx_path = Path(tempfile.mkdtemp()) / "facedet.onnx"
    facedet.export_onnx(net, str(onnx_path))
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])

    def run_torch(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return net(torch.from_numpy(batch).permute(0, 3, 1, 2)).float().numpy()

    def run_ort(batch: np.ndarray) -> np.ndarray:
        return sess.run(None, {"x": np.ascontiguousarray(batch.transpose(0, 3, 1, 2))})[0]

    print(f"# detector runtimes; {machine()}, {threads} threads; {time.strftime('%Y-%m-%d')}; {len(arrays)} web4 pictures\n")
    rows, diff = [], 0.0
    same = {}
    for a in arrays:
        same.setdefault(a.shape, []).append(a)
    for name, fn in [("PyTorch", run_torch), ("ONNX Runtime", run_ort)]:
        fn(arrays[0][None])  # warm-up
        t = time.perf_counter()
        outs = [fn(a[None]) for a in arrays]
        one = (time.perf_counter() - t) / len(arrays) * 1000
        n, t = 0, time.perf_counter()
        for group in same.values():
            for i in range(0, len(group), 4):
                fn(np.stack(group[i : i + 4]))
                n += len(group[i : i + 4])
        four = (time.perf_counter() - t) / n * 1000
        rows.append([name, f"{one:.1f}", f"{four:.1f}"])
        if name == "PyTorch":
            ref = outs
        else:
            diff = max(float(np.abs(a - b).max()) for a, b in zip(ref, outs))
    print(table(["runtime", "ms per picture, one at a time", "ms per picture, batches of 4 (same size)"], rows))
    print(f"\nlargest difference between the runtimes' output maps: {diff:.2e}")


if __name__ == "__main__":
    main()
