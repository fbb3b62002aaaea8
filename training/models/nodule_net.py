"""The nodule model: a torchvision ResNet-50 on 2.5D patches with three heads.

Input: (N, 3, 64, 64) float32 patches from ``nodeview.core.detect.patches`` (axial, coronal, sagittal
planes; HU window mapped to [-1, 1]). Outputs (all per candidate):

    nodule_logit      P(nodule) = sigmoid(logit)
    malignancy_logit  P(malignant | nodule) = sigmoid(logit)
    diameter_mm       estimated nodule diameter in mm (regressed as log-diameter, exponentiated)

The exported ONNX model returns ``nodule_prob``, ``malignancy_prob`` and ``diameter_mm`` (see
``export_onnx.py``). Weights: ``--weights none`` (random init), ``imagenet`` (torchvision's
``ResNet50_Weights.IMAGENET1K_V2``; needs a download, so here it fails fast with a clear message),
or a path to a local state dict / checkpoint.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torchvision.models import ResNet50_Weights, resnet50

if TYPE_CHECKING:
    from training.data.dataset import PatchSet

STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")


class WeightsUnavailable(RuntimeError):
    """Pretrained weights cannot be had (no network, no cached file)."""


class NoduleNet(nn.Module):
    def __init__(self, backbone: nn.Module | None = None) -> None:
        super().__init__()
        net = backbone if backbone is not None else resnet50(weights=None)
        features = net.fc.in_features
        net.fc = nn.Identity()
        self.backbone = net
        self.dropout = nn.Dropout(0.2)
        self.nodule_head = nn.Linear(features, 1)
        self.malignancy_head = nn.Linear(features, 1)
        self.diameter_head = nn.Linear(features, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f = self.dropout(self.backbone(x))
        log_d = self.diameter_head(f).squeeze(1)
        return self.nodule_head(f).squeeze(1), self.malignancy_head(f).squeeze(1), log_d

    def stage_modules(self) -> dict[str, list[nn.Module]]:
        b = self.backbone
        return {
            "stem": [b.conv1, b.bn1],
            "layer1": [b.layer1],
            "layer2": [b.layer2],
            "layer3": [b.layer3],
            "layer4": [b.layer4],
        }

    def freeze_up_to(self, stage: str | None) -> None:
        """Freeze the backbone stages up to and including ``stage`` (None: train everything)."""
        names = list(STAGES)
        limit = names.index(stage) if stage else -1
        for n, name in enumerate(names):
            for module in self.stage_modules()[name]:
                for p in module.parameters():
                    p.requires_grad = n > limit


class ExportWrapper(nn.Module):
    """What goes into ONNX: probabilities and millimetres, not logits."""

    def __init__(self, model: NoduleNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        nodule, malignancy, log_d = self.model(x)
        return torch.sigmoid(nodule), torch.sigmoid(malignancy), torch.exp(log_d)


def _imagenet_backbone(timeout_s: float = 5.0) -> nn.Module:
    """torchvision's ImageNet ResNet-50: from the local torch hub cache, else a download.

    Fails within ``timeout_s`` with :class:`WeightsUnavailable` when neither works (offline).
    """
    weights = ResNet50_Weights.IMAGENET1K_V2
    cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if not cache.exists():
        host = weights.url.split("/")[2]
        try:
            socket.create_connection((host, 443), timeout=timeout_s).close()
        except OSError as exc:
            raise WeightsUnavailable(
                f"ImageNet weights are not cached ({cache}) and {host} cannot be reached ({exc}). "
                "Train with --weights none, or pass a local file with --weights PATH."
            ) from exc
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout_s)
    try:
        return resnet50(weights=weights, progress=False)
    except Exception as exc:  # URLError, timeouts, hash mismatch
        raise WeightsUnavailable(f"could not load ImageNet weights: {exc}") from exc
    finally:
        socket.setdefaulttimeout(previous)


def build_model(weights: str = "none") -> NoduleNet:
    """``none``, ``imagenet`` or a path to a state dict / training checkpoint."""
    if weights == "none":
        return NoduleNet()
    if weights == "imagenet":
        return NoduleNet(_imagenet_backbone())
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {weights} does not exist")
    state = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state:
        state = state["model"]
    model = NoduleNet()
    if any(k.startswith("backbone.") for k in state):
        model.load_state_dict(state)
    else:  # a plain torchvision ResNet-50 state dict: load into the backbone, skip its fc
        backbone_state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        missing, unexpected = model.backbone.load_state_dict(backbone_state, strict=False)
        if unexpected or [m for m in missing if not m.startswith("fc.")]:
            raise ValueError(
                f"{weights} is not a ResNet-50 state dict (missing {missing[:3]}, unexpected {unexpected[:3]})"
            )
    return model


@torch.no_grad()
def predict(model: nn.Module, ps: PatchSet, device: torch.device, batch_size: int = 128) -> dict[str, np.ndarray]:
    model.eval()
    nod, mal, diam = [], [], []
    for start in range(0, len(ps), batch_size):
        x = torch.from_numpy(ps.patches[start : start + batch_size].astype(np.float32)).to(device)
        a, b, c = model(x)
        nod.append(torch.sigmoid(a).cpu().numpy())
        mal.append(torch.sigmoid(b).cpu().numpy())
        diam.append(torch.exp(c).cpu().numpy())
    cat = lambda v: np.concatenate(v) if v else np.zeros(0)  # noqa: E731
    return {"nodule_prob": cat(nod), "malignancy_prob": cat(mal), "diameter_mm": cat(diam)}
