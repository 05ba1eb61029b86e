"""ONNX Runtime sessions: how charaid's networks run at inference, without torch.

The face detector and the default embedder's CNN are shipped as ONNX files under
``charaid/weights`` (exported by ``charaid train-detector`` and ``charaid export-embedder``);
PyTorch is imported only to train or to run a model ``charaid train`` tuned.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


@functools.lru_cache(maxsize=4)
def onnx_session(path: str):
    """An ONNX Runtime session on the CPU, cached per process; as many threads as
    ``CHARAID_THREADS`` (else OMP_NUM_THREADS, which worker processes set to 1; else all cores)."""
    import onnxruntime as ort

    from charaid.config import default_settings

    so = ort.SessionOptions()
    so.log_severity_level = 3
    threads = default_settings().threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    if threads:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    # Threads that wait sleep instead of spinning: beside the detection workers a spinning
    # embedder took their CPU (end to end on tla/raw, 2 cores: 13.3 -> 13.7 pictures/s with 2
    # workers, 10.6 -> 11.2 in one process; 2026-12-05).
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
