"""The scanner: acquisition settings (slice thickness and spacing, pixel spacing, orientation,
contrast, noise), the in-plane PSF blur and correlated quantum noise."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from training.data.synth.anatomy import _Patient
from training.data.synth.arrays import F32, F64

SLICE_CHOICES_MM = ((1.0, 1.0), (1.25, 1.25), (1.25, 1.0), (2.5, 2.5), (2.5, 1.25), (5.0, 5.0))
_SLICE_WEIGHTS = (0.2, 0.3, 0.1, 0.15, 0.05, 0.2)

# ================================================================================================
# Acquisition and the generator
# ================================================================================================
@dataclass(frozen=True)
class Acquisition:
    """How a synthetic scan was acquired and reconstructed (all drawn from the seed unless given)."""

    shape_zyx: tuple[int, int, int]
    spacing_zyx: tuple[float, float, float]
    slice_thickness_mm: float
    psf_fwhm_mm: float
    noise_sd_hu: float
    noise_corr_px: float
    pad_value: int | None
    patient_position: str
    orientation: tuple[float, float, float, float, float, float]
    contrast: bool
    origin_zyx: tuple[float, float, float]


_IDENTITY_IOP = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
_FLIPPED_IOP = (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def _sample_acquisition(
    rng: np.random.Generator,
    p: _Patient,
    contrast: bool,
    shape_zyx: Sequence[int] | None,
    spacing_zyx: Sequence[float] | None,
    thickness: float | None,
    noise_sd: float | None,
    position: str | None,
) -> Acquisition:
    # every draw happens whatever is overridden, so overrides never shift the other random choices
    pos_draw, flip_draw = rng.random(), rng.random()
    pair = SLICE_CHOICES_MM[int(rng.choice(len(SLICE_CHOICES_MM), p=np.array(_SLICE_WEIGHTS)))]
    psf = float(rng.uniform(0.6, 1.0))
    sd_draw = float(rng.uniform(10.0, 40.0))
    corr = float(rng.uniform(0.5, 1.1)) if rng.random() < 0.6 else 0.0
    pad_draw = rng.random()
    fov_margin = float(rng.uniform(15.0, 70.0))
    t_top, t_bot = -float(rng.uniform(0.05, 0.15)), float(rng.uniform(1.02, 1.15))
    t_jitter = float(rng.uniform(-1.0, 1.0))
    xy_jitter = rng.uniform(-5.0, 5.0, 2)

    position = position or ("HFS" if pos_draw < 0.85 else "FFS")
    orientation = _FLIPPED_IOP if (position.startswith("FF") and flip_draw < 0.5) else _IDENTITY_IOP
    if spacing_zyx is not None:
        step = float(spacing_zyx[0])
        thick = float(thickness) if thickness else step
    elif thickness:
        thick = step = float(thickness)
    else:
        thick, step = pair
    nz = ny = nx = 0
    if shape_zyx is not None:
        nz, ny, nx = (int(v) for v in shape_zyx)
    else:
        ny = nx = 512
    if spacing_zyx is not None:
        sy, sx = float(spacing_zyx[1]), float(spacing_zyx[2])
    else:
        half_width = 1.06 * p.W + max(p.m_lat, 12.0) + 1.5 * p.fat + p.skin + 8.0
        fov = 2.0 * half_width + fov_margin
        px = fov / nx
        if nx >= 256:
            px = float(np.clip(px, 0.55, 0.9))
        sy = sx = round(px, 4)
    span_t = t_bot - t_top
    if nz == 0:
        nz = max(1, int(round(span_t * p.H / step)))
    cover_t = nz * step / p.H
    if cover_t >= span_t:
        t_c = 0.5 * (t_top + t_bot)
    else:
        slack = 0.5 * (min(1.25, t_bot + 0.1) - max(-0.2, t_top - 0.05) - cover_t)
        t_c = 0.5 + 0.5 * max(0.0, slack) * t_jitter
    z_center = p.z_of(t_c)
    oz = z_center - 0.5 * (nz - 1) * step
    oy = -0.5 * (ny - 1) * sy + float(xy_jitter[0])
    ox = -0.5 * (nx - 1) * sx + float(xy_jitter[1])
    pad = None if pad_draw < 0.4 else (-2000 if pad_draw < 0.7 else -3024)
    return Acquisition(
        shape_zyx=(nz, ny, nx),
        spacing_zyx=(step, sy, sx),
        slice_thickness_mm=thick,
        psf_fwhm_mm=psf,
        noise_sd_hu=sd_draw if noise_sd is None else float(noise_sd),
        noise_corr_px=corr,
        pad_value=pad,
        patient_position=position,
        orientation=orientation,
        contrast=contrast,
        origin_zyx=(float(oz), float(oy), float(ox)),
    )

def _gauss_taps(sigma: float) -> F64:
    radius = max(1, int(math.ceil(3.0 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / max(sigma, 1e-3)) ** 2)
    return np.asarray(k / k.sum())


def _blur2d(src: F32, sigma_yx: Sequence[float], out: F32, tmp: F32) -> None:
    """Separable Gaussian blur of a 2-D slice with short kernels (edges replicated); ``src`` and
    ``tmp`` are overwritten scratch space, the result goes to ``out``."""
    for axis, (sigma, a, b) in enumerate(((sigma_yx[1], src, tmp), (sigma_yx[0], tmp, out))):
        k = _gauss_taps(float(sigma)).astype(np.float32)
        r = len(k) // 2
        np.multiply(a, k[r], out=b)
        for d in range(1, r + 1):
            w = k[r + d]
            if axis == 0:
                b[:, d:] += w * a[:, :-d]
                b[:, :-d] += w * a[:, d:]
                b[:, :d] += w * a[:, :1]
                b[:, -d:] += w * a[:, -1:]
            else:
                b[d:] += w * a[:-d]
                b[:-d] += w * a[d:]
                b[:d] += w * a[:1]
                b[-d:] += w * a[-1:]

def noise_gain(corr_px: float) -> float:
    """Standard deviation of white unit noise after the in-plane Gaussian of ``corr_px``."""
    if corr_px <= 0:
        return 1.0
    radius = int(3.0 * corr_px + 0.5)
    x = np.arange(-radius, radius + 1)
    k = np.exp(-0.5 * (x / corr_px) ** 2)
    k /= k.sum()
    return float((k**2).sum())  # variance factor (sum k^2)^2 for the separable 2-D kernel: sd = sum k^2


def _add_noise(out: F32, sd: float, corr_px: float, z_corr: float, seed: int) -> None:
    """Add quantum noise of standard deviation ``sd``: in-plane Gaussian-correlated when
    ``corr_px > 0``; adjacent slices correlated by ``z_corr`` (overlapping reconstruction).

    Each slice's noise is a randomly shifted and flipped window of one of a bank of independent
    noise images (much cheaper than fresh noise for every voxel; neighbouring slices use
    independent windows)."""
    nz, ny, nx = out.shape
    rng = np.random.default_rng([int(seed), 0x5EED])
    n_bank, pad = min(nz + 2, 24), 32
    bank = rng.standard_normal((n_bank, ny + pad, nx + pad), dtype=np.float32)
    if corr_px > 0:
        bank = ndimage.gaussian_filter(bank, (0.0, corr_px, corr_px), truncate=3.0, mode="wrap")
        bank *= np.float32(1.0 / noise_gain(corr_px))
    picks = rng.integers(n_bank, size=nz + 2)
    offs = rng.integers(pad + 1, size=(nz + 2, 2))
    flips = rng.integers(4, size=nz + 2)

    def window(k: int) -> F32:
        v = bank[picks[k], offs[k, 0] : offs[k, 0] + ny, offs[k, 1] : offs[k, 1] + nx]
        if flips[k] & 1:
            v = v[::-1]
        if flips[k] & 2:
            v = v[:, ::-1]
        return v

    rho = float(np.clip(z_corr, 0.0, 0.6))
    a = (1.0 - math.sqrt(1.0 - 2.0 * rho * rho)) / (2.0 * rho) if rho > 0 else 0.0
    scale = np.float32(sd / math.sqrt(1.0 + 2.0 * a * a))
    a32 = np.float32(a)
    for k in range(nz):
        if a > 0:
            out[k] += scale * (window(k + 1) + a32 * (window(k) + window(k + 2)))
        else:
            out[k] += scale * window(k + 1)
