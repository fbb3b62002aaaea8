"""What the nodule model learns from, in torch alone: augmentation and the three-head loss.

Shared by ``train.py`` (patches mined from scans) and ``train_packed.py`` (packed shards on a GPU
machine that has torch but not the viewer's DICOM stack).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: the malignancy label of a patch that is not a nodule or whose nodule is unrated (``dataset.UNKNOWN``)
UNKNOWN = -1


def augment(x: torch.Tensor, diameter: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Physically consistent flips, zoom, HU jitter and noise on (N, 3, S, S) patches in [-1, 1].

    Channels: 0 axial (rows +y, cols +x), 1 coronal (rows -z, cols +x), 2 sagittal (rows -z, cols +y).
    """
    n = x.shape[0]
    x = x.clone()
    dev = x.device  # the random draws come from ``gen`` (CPU) whatever the device, so runs repeat

    def coin() -> torch.Tensor:
        return (torch.rand(n, generator=gen) < 0.5).to(dev)

    lr, ap, si = coin(), coin(), coin()
    # left-right (x): axial & coronal columns; anterior-posterior (y): axial rows, sagittal columns;
    # superior-inferior (z): coronal & sagittal rows.
    x[lr, 0] = x[lr, 0].flip(-1)
    x[lr, 1] = x[lr, 1].flip(-1)
    x[ap, 0] = x[ap, 0].flip(-2)
    x[ap, 2] = x[ap, 2].flip(-1)
    x[si, 1] = x[si, 1].flip(-2)
    x[si, 2] = x[si, 2].flip(-2)
    zoom = torch.empty(n).uniform_(0.9, 1.1, generator=gen)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = 1.0 / zoom
    theta[:, 1, 1] = 1.0 / zoom
    grid = F.affine_grid(theta, list(x.shape), align_corners=False).to(dev, x.dtype)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    gain = torch.empty(n, 1, 1, 1).uniform_(0.92, 1.08, generator=gen).to(dev)
    offset = torch.empty(n, 1, 1, 1).uniform_(-0.05, 0.05, generator=gen).to(dev)
    if dev.type == "cpu":
        noise = torch.randn(x.shape, generator=gen)
    else:  # drawn on the device: a batch's worth of CPU noise costs more than the step
        noise = torch.randn(x.shape, device=dev, dtype=x.dtype)
    sigma = torch.empty(n, 1, 1, 1).uniform_(0.0, 0.04, generator=gen).to(dev)
    x = ((x + 1) * gain - 1 + offset + noise * sigma).clamp(-1, 1)
    return x, diameter * zoom.to(dev)


def losses(
    outputs: tuple[torch.Tensor, ...],
    nodule: torch.Tensor,
    malignant: torch.Tensor,
    diameter: torch.Tensor,
    focal_gamma: float,
) -> dict[str, torch.Tensor]:
    nodule_logit, malignancy_logit, log_d = outputs
    target = nodule.float()
    if focal_gamma > 0:
        p = torch.sigmoid(nodule_logit)
        pt = torch.where(target > 0.5, p, 1 - p)
        bce = F.binary_cross_entropy_with_logits(nodule_logit, target, reduction="none")
        l_nod = ((1 - pt) ** focal_gamma * bce).mean()
    else:
        l_nod = F.binary_cross_entropy_with_logits(nodule_logit, target)
    known = (nodule > 0) & (malignant != UNKNOWN)
    l_mal = (
        F.binary_cross_entropy_with_logits(malignancy_logit[known], malignant[known].float())
        if known.any()
        else nodule_logit.sum() * 0
    )
    has_d = (nodule > 0) & torch.isfinite(diameter)
    l_d = (
        F.smooth_l1_loss(log_d[has_d], torch.log(diameter[has_d].clamp(min=1.0)))
        if has_d.any()
        else nodule_logit.sum() * 0
    )
    total = l_nod + 0.5 * l_mal + 0.2 * l_d
    return {"loss": total, "nodule": l_nod, "malignancy": l_mal, "diameter": l_d}
