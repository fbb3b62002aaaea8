"""The patient: body, bones, mediastinum, lungs and the tubes of one patient, painted on a fine-z
grid by the scene (see :mod:`training.data.synth` for the anatomy in full)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from training.data.synth.arrays import AIR_HU, F32, F64, _ellipse_d, _paint, _smoothstep, _soft
from training.data.synth.vessels import _grow_tree, _polyline, _Tubes


# ================================================================================================
# Patient anatomy
# ================================================================================================
@dataclass
class _Maps:
    """Angle-dependent quantities about the polar origin of a patient (grid or point arrays)."""

    bx: NDArray[np.float32]
    by: NDArray[np.float32]
    r: NDArray[np.float32]
    c2: NDArray[np.float32]
    s2p: NDArray[np.float32]
    s2a: NDArray[np.float32]
    sin: NDArray[np.float32]
    s_param: NDArray[np.float32]
    cav_mod: NDArray[np.float32]
    muscle0: NDArray[np.float32]
    cos2: NDArray[np.float32]
    fat0: NDArray[np.float32]
    breast: NDArray[np.float32]
    scap_zone: NDArray[np.float32]
    theta_side: NDArray[np.float32]
    t_cap: NDArray[np.float32]
    t_dome: NDArray[np.float32]
    dome_g: NDArray[np.float32]
    band_prof: NDArray[np.float32]


class _Patient:
    """One random patient: sizes, HU values and the organ layout, in a body frame.

    Body frame: ``bx = x - x_mid`` (mm, + patient left), ``by = y - y0`` (mm, + posterior), and the
    craniocaudal parameter ``t = (z_apex - z) / H`` (0 at the lung apices, 1 at the deepest
    costophrenic recess).
    """

    def __init__(self, rng: np.random.Generator, contrast: bool) -> None:
        u = rng.uniform
        self.contrast = contrast
        self.W = u(118.0, 150.0)
        self.Da = u(68.0, 92.0)
        self.Dp = u(82.0, 102.0)
        self.H = u(225.0, 285.0)
        self.x_mid = u(-15.0, 15.0)
        self.y0 = u(-25.0, 5.0)
        self.z_apex = u(-70.0, 10.0)
        # wall
        self.skin = u(1.5, 2.5)
        self.m_lat, self.m_ant, self.m_post, self.m_spine = u(9, 16), u(8, 15), u(16, 24), u(18, 28)
        self.fat = u(5.0, 32.0)
        self.fat_harm = rng.normal(0.0, 0.18, 4)
        self.fat_phase = rng.uniform(0, 2 * math.pi, 4)
        self.female = rng.random() < 0.4
        self.breast_mm = u(15.0, 55.0) if self.female else 0.0
        self.cav_harm = rng.normal(0.0, 0.015, 3)
        self.cav_phase = rng.uniform(0, 2 * math.pi, 3)
        # HU
        self.skin_hu = u(25, 55)
        self.fat_hu = u(-115, -88)
        self.muscle_hu = u(40, 62)
        self.med_fat_hu = u(-100, -70)
        self.lung_hu = u(-885, -825)
        self.lung_grad = u(15, 80)
        self.dep_hu = u(60, 260) if rng.random() < 0.3 else 0.0
        self.lung_tex = u(6.0, 16.0)
        self.emphysema = u(0.03, 0.12) if rng.random() < 0.15 else 0.0
        self.blood_hu = u(35, 50)
        self.aorta_hu = u(180, 350) if contrast else self.blood_hu
        self.pa_hu = u(160, 320) if contrast else self.blood_hu
        self.vein_hu = u(130, 260) if contrast else self.blood_hu
        self.myo_hu = u(80, 120) if contrast else u(40, 55)
        self.liver_hu = u(90, 125) if contrast else u(50, 70)
        self.spleen_hu = u(95, 130) if contrast else u(42, 55)
        self.cortex_hu = u(700, 1000)
        self.marrow_hu = u(150, 300)
        self.vert_hu = u(280, 380)
        self.disc_hu = u(70, 110)
        self.cart_hu = u(80, 150) if rng.random() < 0.7 else u(250, 450)
        self.csf_hu = u(15, 35)
        self.stomach_hu = u(5, 30)
        # mediastinum, heart, diaphragm, organs
        self.xm = u(-6.0, 2.0)
        self.heart = {
            "x": u(0.12, 0.22) * self.W,
            "y": -u(0.28, 0.4) * self.Da,
            "t": u(0.58, 0.64),
            "a": u(0.40, 0.47) * self.W,
            "b": 0.0,
            "c": u(0.17, 0.21) * self.H,
            "ang": math.radians(u(30, 45)),
            "fat": u(2.0, 7.0),
        }
        self.heart["b"] = self.heart["a"] * u(0.7, 0.82)
        self.t_dr = u(0.66, 0.74)
        self.t_dl = self.t_dr + u(0.02, 0.06)
        # spine levels (vertebra + disc), ~T1 centred at the apex
        dlev = 1.05 / 11.0
        t1 = u(-0.02, 0.03)
        self.levels = t1 - 0.5 * dlev + dlev * np.arange(-6, 20)  # boundaries (t), increasing
        self.rib_heads = t1 + dlev * (np.arange(12) + 0.3)
        self.rib_drop = u(100.0, 135.0)
        self.rib_hz, self.rib_hr = u(5.0, 6.5), u(2.6, 3.4)
        self.rib_ends = np.array([0.95, 0.96, 0.96, 0.96, 0.96, 0.96, 0.95, 0.9, 0.85, 0.8, 0.6, 0.45])
        self.canal_r = u(7.0, 8.5)
        self.spinous = u(22.0, 32.0)
        self.scap_d = u(10.0, 14.0)
        self.sternum_h = u(4.5, 6.0)
        # fissures (t at the posterior / anterior ends)
        self.fiss_l = (u(0.18, 0.26), u(0.82, 0.92))
        self.fiss_r = (u(0.24, 0.32), u(0.84, 0.94))
        self.fiss_minor = u(0.42, 0.5)
        self.fiss_amp = u(120.0, 260.0)
        self.fiss_tilt = u(0.03, 0.08)
        self.trachea_r = u(9.0, 12.0)
        self.t_carina = u(0.3, 0.36)

    # ---- profiles along t ----------------------------------------------------------------------
    _T = np.array([-0.5, -0.05, 0.0, 0.1, 0.2, 0.35, 0.5, 0.8, 1.0, 1.4])
    _PA = np.array([0.55, 0.5, 0.52, 0.68, 0.8, 0.92, 0.98, 1.02, 1.02, 0.98])
    _PB = np.array([0.6, 0.58, 0.6, 0.72, 0.82, 0.92, 0.98, 1.0, 1.0, 0.98])

    def cavity_axes(self, t: NDArray[np.floating] | float) -> tuple[F64, F64, F64]:
        a = self.W * np.interp(t, self._T, self._PA)
        pb = np.interp(t, self._T, self._PB)
        return a, self.Da * pb, self.Dp * pb

    def band_width(self, t: NDArray[np.floating] | float) -> F64:
        return np.interp(t, [-0.5, 0.0, 0.15, 0.3, 0.4, 0.5, 0.7, 1.0], [30, 30, 38, 44, 44, 30, 20, 16])

    def spine(self, t: NDArray[np.floating] | float) -> tuple[F64, F64, F64]:
        """(vertebral body half width, half depth, centre by) at ``t``."""
        tc = np.clip(t, -0.4, 1.4)
        av = 14.0 + 6.0 * tc
        bv = 9.0 + 5.0 * tc
        _, _, bp = self.cavity_axes(t)
        return av, bv, bp - bv - 3.0

    def aorta_desc(self, t: NDArray[np.floating] | float) -> tuple[F64, F64, F64]:
        """Descending aorta centre (bx, by) and radius at ``t`` (valid for t > 0.25)."""
        av, bv, yv = self.spine(t)
        r = np.interp(t, [0.2, 1.4], [12.5, 10.5])
        bx = av * 0.55 + r * 0.75
        by = yv - bv - 1.0 + np.interp(t, [0.2, 1.4], [0.0, 6.0])
        bx = bx * np.interp(t, [0.9, 1.4], [1.0, 0.4])
        return bx, by, r

    # ---- angle maps ------------------------------------------------------------------------------
    def maps(self, bx: NDArray[np.floating], by: NDArray[np.floating]) -> _Maps:
        bx, by = np.broadcast_arrays(np.asarray(bx, np.float32), np.asarray(by, np.float32))
        r = np.hypot(bx, by).astype(np.float32)
        r_safe = np.maximum(r, 1e-3)
        cos = bx / r_safe
        sin = by / r_safe
        post = (by > 0).astype(np.float32)
        theta = np.arctan2(by, bx)
        theta_side = np.arctan2(by, np.abs(bx)).astype(np.float32)
        s_param = ((0.5 * math.pi - theta_side) / math.pi).astype(np.float32)
        cav_mod = np.ones_like(r)
        for k, (amp, ph) in enumerate(zip(self.cav_harm, self.cav_phase, strict=True)):
            cav_mod += np.float32(amp) * np.cos((k + 2) * theta + ph).astype(np.float32)
        wp = np.clip(sin, 0, 1) ** 2
        wa = np.clip(-sin, 0, 1) ** 2
        wspine = np.clip(sin, 0, 1) ** 12
        scap = (_smoothstep(0.35, 0.55, theta_side) * (1.0 - _smoothstep(1.2, 1.4, theta_side))).astype(np.float32)
        muscle0 = self.m_lat + (self.m_post - self.m_lat) * wp + (self.m_ant - self.m_lat) * wa
        muscle0 = muscle0 + self.m_spine * wspine + 8.0 * scap
        fat0 = np.ones_like(r)
        for k, (amp, ph) in enumerate(zip(self.fat_harm, self.fat_phase, strict=True)):
            fat0 += np.float32(amp) * np.cos((k + 1) * theta + ph).astype(np.float32)
        fat0 = self.fat * np.clip(fat0, 0.4, 1.8) * (1.0 - 0.6 * wspine)
        breast = np.zeros_like(r)
        if self.female:
            for centre in (math.radians(-62.0), math.radians(-118.0)):
                diff = np.angle(np.exp(1j * (theta - centre)))
                breast += np.exp(-0.5 * (diff / math.radians(24.0)) ** 2).astype(np.float32)
            breast *= np.float32(self.breast_mm)
        # apex caps: the lungs start at (+-xa, ya) at t = 0 and widen like paraboloids
        xa, ya, rap = 0.42 * self.W, 0.12 * self.Dp, 45.0
        t_cap = 0.16 * ((np.abs(bx) - xa) ** 2 + (0.8 * (by - ya)) ** 2) / rap**2
        # diaphragm domes: right (bx < 0) higher; the periphery reaches the recesses
        sx, sy = 0.55 * self.W, 0.45 * (self.Da + self.Dp)
        t_per = np.interp(by, [-self.Da, 0.0, self.Dp], [0.88, 0.95, 1.0])
        domes = []
        for t_top, side in ((self.t_dr, -1.0), (self.t_dl, 1.0)):
            uu = ((bx - side * 0.5 * self.W) / sx) ** 2 + ((by - 0.05 * self.Dp) / sy) ** 2
            domes.append(t_top + (t_per - t_top) * np.clip(uu, 0, 1.6) ** 1.3)
        t_dome = np.where(bx < 0, domes[0], domes[1]).astype(np.float32)
        if t_dome.ndim == 2 and min(t_dome.shape) > 2:
            gy, gx = np.gradient(t_dome * self.H, by[:, 0], bx[0, :])
            dome_g = (1.0 / np.sqrt(1.0 + gx**2 + gy**2)).astype(np.float32)
        else:
            dome_g = np.full_like(r, 0.8)
        band_prof = self._band_profile(by)
        return _Maps(
            bx=bx,
            by=by,
            r=r,
            c2=(cos * cos).astype(np.float32),
            s2p=(sin * sin * post).astype(np.float32),
            s2a=(sin * sin * (1 - post)).astype(np.float32),
            sin=sin.astype(np.float32),
            s_param=s_param,
            cav_mod=cav_mod.astype(np.float32),
            muscle0=muscle0.astype(np.float32),
            cos2=(cos * cos).astype(np.float32),
            fat0=fat0.astype(np.float32),
            breast=breast.astype(np.float32),
            scap_zone=scap,
            theta_side=theta_side,
            t_cap=t_cap.astype(np.float32),
            t_dome=t_dome,
            dome_g=dome_g.astype(np.float32),
            band_prof=band_prof.astype(np.float32),
        )

    def _band_profile(self, by: NDArray[np.floating]) -> NDArray[np.float32]:
        rel = np.where(by < 0, by / self.Da, by / self.Dp)
        knots = [-1.1, -0.85, -0.6, -0.3, 0.1, 0.4, 0.8, 1.2]
        return np.interp(rel, knots, [0.12, 0.2, 0.55, 1.0, 1.0, 0.7, 0.5, 0.45]).astype(np.float32)

    # ---- shared geometry ---------------------------------------------------------------------------
    def cavity_d(self, m: _Maps, t: NDArray[np.floating] | float) -> NDArray[np.float32]:
        """Signed radial distance (mm) to the inner rib cage, positive outside."""
        a, ba, bp = self.cavity_axes(t)
        inv = m.c2 / np.float32(a) ** 2 + m.s2p / np.float32(bp) ** 2 + m.s2a / np.float32(ba) ** 2 + np.float32(1e-12)
        rc = np.float32(1.0) / np.sqrt(inv)
        return np.asarray(m.r - rc * m.cav_mod, dtype=np.float32)

    def heart_d(
        self, bx: NDArray[np.floating], by: NDArray[np.floating], t: NDArray[np.floating] | float, grow: float = 0.0
    ) -> NDArray[np.float32]:
        """Signed distance (mm) to the heart: ventricles (ellipsoid with its long axis towards the
        left-anterior) joined to the atria (smaller, posterior-right and higher)."""
        h = self.heart
        ca, sa = math.cos(h["ang"]), math.sin(h["ang"])
        dx, dy = bx - h["x"], by - h["y"]
        u = dx * ca - dy * sa  # along the long axis (towards left-anterior)
        v = dx * sa + dy * ca
        out = None
        for du, dv, dt, fa, fb, fc in ((0.0, 0.0, 0.0, 1.0, 1.0, 1.0), (-0.5, 0.45, -0.3, 0.62, 0.6, 0.72)):
            zz = (np.asarray(t) - (h["t"] + dt * h["c"] / self.H)) * self.H / (fc * h["c"])
            scale = np.sqrt(np.clip(1.0 - zz**2, 0.0, None)).astype(np.float32)
            a = fa * h["a"] * scale + 1e-3
            b = fb * h["b"] * scale + 1e-3
            rho = np.sqrt(((u - du * h["a"]) / a) ** 2 + ((v - dv * h["b"]) / b) ** 2)
            d = np.where(scale > 0.02, (rho - 1.0) * np.minimum(a, b) - grow, 1e3)
            out = d if out is None else np.minimum(out, d)
        return np.asarray(out, dtype=np.float32)

    def lung_occupancy(self, m: _Maps, t: NDArray[np.floating] | float, w: float = 1.0) -> F32:
        """Soft lung occupancy (both lungs) at the points of ``m`` and craniocaudal ``t``."""
        occ = _soft(self.cavity_d(m, t), w)
        occ *= _soft((m.t_cap - t) * self.H, w)
        occ *= _soft((np.asarray(t) - m.t_dome) * self.H * m.dome_g, w)
        band = self.band_width(t) * m.band_prof
        occ *= 1.0 - _soft(np.abs(m.bx - self.xm) - band, w)
        occ *= 1.0 - _soft(self.heart_d(m.bx, m.by, t, grow=self.heart["fat"]), w)
        av, bv, yv = self.spine(t)
        occ *= 1.0 - _soft(_ellipse_d(m.bx, m.by - (yv + 30.0), av + 6.0, bv + 36.0), w)
        ax, ay, ar = self.aorta_desc(t)
        da = np.hypot(m.bx - ax, m.by - ay) - (ar + 2.0)
        occ *= 1.0 - _soft(np.where(np.asarray(t) > 0.24, da, 1e3), w)
        return occ

    def side_of(self, bx: NDArray[np.floating]) -> NDArray[np.bool_]:
        """True for the patient's left lung."""
        return np.asarray(bx) > self.xm

    # ---- z landmarks -------------------------------------------------------------------------------
    def z_of(self, t: float) -> float:
        return self.z_apex - t * self.H

    def t_of(self, z: NDArray[np.floating] | float) -> F64:
        return np.asarray((self.z_apex - np.asarray(z)) / self.H)

    def xyz(self, bx: float, by: float, t: float) -> F64:
        return np.array([self.x_mid + bx, self.y0 + by, self.z_of(t)])


class _SmoothField:
    """Band-limited random field on a grid, evaluated slice by slice: a Gaussian-smoothed coarse
    random lattice (spacing ``scale_mm``) interpolated linearly, separably; about unit sd."""

    def __init__(
        self, rng: np.random.Generator, n_slices: int, dz: float, ny: int, nx: int, dyx: float, scale_mm: float
    ):
        def axis(n: int, step: float) -> tuple[NDArray[np.intp], F32, int]:
            pos = np.arange(n) * step / scale_mm + 1.0
            i0 = np.floor(pos).astype(np.intp)
            return i0, (pos - i0).astype(np.float32), int(i0.max()) + 3

        self.iz, self.fz, nzc = axis(n_slices, dz)
        self.iy, fy, nyc = axis(ny, dyx)
        self.ix, self.fx, nxc = axis(nx, dyx)
        self.fy = fy[:, None]
        coarse = ndimage.gaussian_filter(rng.standard_normal((nzc, nyc, nxc)), 0.7, mode="wrap")
        self.coarse = (coarse / coarse.std()).astype(np.float32)

    def slice(self, m: int) -> F32:
        c, f = self.coarse, self.fz[m]
        plane = c[self.iz[m]] * (1.0 - f) + c[self.iz[m] + 1] * f
        rows = plane[self.iy] * (1.0 - self.fy) + plane[self.iy + 1] * self.fy
        out = rows[:, self.ix]
        out += self.fx * (rows[:, self.ix + 1] - out)
        return out

# ================================================================================================
# The scene: paints the patient on a fine-z grid
# ================================================================================================
class _Scene:
    """Paints one patient onto the canonical (LPS-aligned) grid: ``i`` -> +x, ``j`` -> +y, ``k`` -> +z."""

    def __init__(self, patient: _Patient, origin_zyx: F64, spacing_zyx: F64, fine_dz: float, n_fine: int) -> None:
        self.p = patient
        self.origin = origin_zyx
        self.spacing = spacing_zyx
        self.dz = fine_dz
        self.n_fine = n_fine

    def setup(self, rng: np.random.Generator, ny: int, nx: int) -> None:
        p = self.p
        self.ny, self.nx = ny, nx
        sy, sx = float(self.spacing[1]), float(self.spacing[2])
        self.px = min(sy, sx)
        self.edge = self.px
        y = self.origin[1] + sy * np.arange(ny)
        x = self.origin[2] + sx * np.arange(nx)
        bx = (x - p.x_mid).astype(np.float32)[None, :]
        by = (y - p.y0).astype(np.float32)[:, None]
        self.m_full = p.maps(np.broadcast_to(bx, (ny, nx)), np.broadcast_to(by, (ny, nx)))
        t_all = p.t_of(self.origin[0] + self.dz * np.arange(self.n_fine))
        self.t_range = (float(t_all.min()), float(t_all.max()))
        self.table_top = self._table_top()
        # paint only inside the body's bounding box (over all slices), plus a margin
        body = np.zeros((ny, nx), dtype=bool)
        for t in np.linspace(self.t_range[0], self.t_range[1], 12):
            body |= self._body_d(self.m_full, float(t)) < 3.0 * self.px
        rows, cols = np.flatnonzero(body.any(axis=1)), np.flatnonzero(body.any(axis=0))
        if len(rows) == 0:
            rows, cols = np.arange(ny), np.arange(nx)
        self.j0, self.i0 = max(0, int(rows[0]) - 3), max(0, int(cols[0]) - 3)
        j1, i1 = min(ny, int(rows[-1]) + 4), min(nx, int(cols[-1]) + 4)
        self.crop = (slice(self.j0, j1), slice(self.i0, i1))
        self.cy, self.cx = j1 - self.j0, i1 - self.i0
        self.m = _Maps(**{k: np.ascontiguousarray(v[self.crop]) for k, v in self.m_full.__dict__.items()})
        self.lung_base = (p.lung_hu + p.lung_grad * _smoothstep(-p.Da, p.Dp, by[self.crop[0]])).astype(np.float32)
        self.tex = _SmoothField(rng, self.n_fine, self.dz, self.cy, self.cx, self.px, 9.0)
        self.emph = _SmoothField(rng, self.n_fine, self.dz, self.cy, self.cx, self.px, 3.5) if p.emphysema > 0 else None
        self.fiss_w = max(self.dz, self.px) * 0.9

    # ---- helpers -----------------------------------------------------------------------------
    def wall(self, m: _Maps, t: float) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """(muscle thickness, fat thickness) in mm outside the rib cage at ``t``."""
        p = self.p
        mus = m.muscle0 + np.float32(20.0 * (1.0 - _smoothstep(0.0, 0.15, t))) * m.cos2
        fat = m.fat0 * np.float32(1.0 + 0.5 * _smoothstep(0.8, 1.25, t))
        if p.female:
            bump = float(_smoothstep(0.22, 0.38, t) * (1.0 - _smoothstep(0.6, 0.8, t)))
            if bump > 0:
                fat = fat + m.breast * np.float32(bump)
        return mus, fat

    def _body_d(self, m: _Maps, t: float, table: bool = True, d_c: F32 | None = None) -> NDArray[np.float32]:
        """Signed distance to the skin surface (flattened against the table top)."""
        p = self.p
        mus, fat = self.wall(m, t)
        d_b = (p.cavity_d(m, t) if d_c is None else d_c) - (mus + fat + np.float32(p.skin))
        if table:
            d_b = np.maximum(d_b, m.by - self._table_y(m.bx))
        return d_b

    def _table_y(self, bx: NDArray[np.floating]) -> NDArray[np.float32]:
        return np.asarray(self.table_top - (np.asarray(bx) ** 2) / (2.0 * 1100.0), dtype=np.float32)

    def _table_top(self) -> float:
        """The table top (by at the midline): the 75th percentile over the scan of the body's
        posterior extent, so the back is flattened against it at most levels."""
        p = self.p
        bx = np.linspace(-80.0, 80.0, 17, dtype=np.float32)[None, :]
        by = np.linspace(0.0, 320.0, 321, dtype=np.float32)[:, None]
        m = p.maps(np.broadcast_to(bx, (321, 17)), np.broadcast_to(by, (321, 17)))
        ext = []
        for t in np.linspace(self.t_range[0], self.t_range[1], 24):
            inside = np.flatnonzero((self._body_d(m, float(t), table=False) < 0).any(axis=1))
            if len(inside):
                ext.append(float(by[inside[-1], 0]))
        return float(np.percentile(ext, 75)) if ext else 150.0

    def table(self) -> tuple[F32, F32]:
        """(occupancy, HU) of the scanner table on one slice (the same on every slice)."""
        m = self.m_full
        yy = m.by - self._table_y(m.bx) - 1.0
        lateral = _soft(np.abs(m.bx) - 225.0, self.edge)
        occ = np.zeros_like(yy)
        hu = np.full_like(yy, -1000.0)
        for lo, hi, val in ((0.0, 2.0, 180.0), (2.0, 28.0, -880.0), (28.0, 31.0, 180.0)):
            o = _soft(np.abs(yy - 0.5 * (lo + hi)) - 0.5 * (hi - lo), self.edge) * lateral
            hu = hu + o * (val - hu)
            occ = np.maximum(occ, o)
        return occ.astype(np.float32), hu.astype(np.float32)

    def _lung(self, m: _Maps, d_c: F32, t: float) -> F32:
        """:meth:`_Patient.lung_occupancy` on the crop, with the keep-outs evaluated in their boxes."""
        p, w, H = self.p, self.edge, self.p.H
        occ = _soft(d_c, w)
        occ *= _soft((m.t_cap - np.float32(t)) * np.float32(H), w)
        occ *= _soft((np.float32(t) - m.t_dome) * np.float32(H) * m.dome_g, w)
        band = np.float32(p.band_width(t)) * m.band_prof
        occ *= 1.0 - _soft(np.abs(m.bx - np.float32(p.xm)) - band, w)
        h = p.heart
        if abs(t - h["t"]) * H < 1.3 * h["c"]:
            r = 1.2 * max(h["a"], h["b"]) + h["fat"] + 3.0
            sl = self._box(h["x"], h["y"], r, r)
            mm = self._sub(sl)
            occ[sl] *= 1.0 - _soft(p.heart_d(mm.bx, mm.by, t, grow=h["fat"]), w)
        av, bv, yv = (float(v) for v in p.spine(t))
        sl = self._box(0.0, yv + 30.0, av + 8.0, bv + 38.0)
        mm = self._sub(sl)
        occ[sl] *= 1.0 - _soft(_ellipse_d(mm.bx, mm.by - (yv + 30.0), av + 6.0, bv + 36.0), w)
        if t > 0.24:
            ax, ay, ar = (float(v) for v in p.aorta_desc(t))
            sl = self._box(ax, ay, ar + 4.0, ar + 4.0)
            mm = self._sub(sl)
            occ[sl] *= 1.0 - _soft(np.hypot(mm.bx - ax, mm.by - ay) - (ar + 2.0), w)
        return occ

    # ---- one fine slice ------------------------------------------------------------------------
    def paint(self, out_full: F32, m_index: int, z: float) -> None:
        p, m, w = self.p, self.m, self.edge
        t = float(p.t_of(z))
        H = p.H
        out_full.fill(AIR_HU)
        out = out_full[self.crop]
        d_c = p.cavity_d(m, t)
        mus, _ = self.wall(m, t)
        d_b = self._body_d(m, t, d_c=d_c)
        _paint(out, _soft(d_b, w), p.skin_hu)
        _paint(out, _soft(d_b + np.float32(p.skin), w), p.fat_hu)
        if p.female:
            bump = float(_smoothstep(0.22, 0.38, t) * (1.0 - _smoothstep(0.6, 0.8, t)))
            if bump > 0.05:
                gland = _soft(d_c - mus - np.float32(0.55 * bump) * m.breast, w) * (m.breast > 3.0)
                _paint(out, gland * _soft(d_b + 3.0, w), self.p.muscle_hu * 0.2 - 30.0)
        _paint(out, _soft(d_c - mus, w), p.muscle_hu)
        neck = float(_smoothstep(-0.05, 0.12, t))
        _paint(out, _soft(d_c - 1.5, w), neck * p.med_fat_hu + (1 - neck) * 25.0)
        if t > min(p.t_dr, p.t_dl) - 0.03:
            self._abdomen(out, m, d_c, t)
        # lungs
        if -0.01 < t < 1.1:
            lung = self._lung(m, d_c, t)
            val = self.lung_base + np.float32(p.lung_tex) * self.tex.slice(m_index)
            if p.dep_hu > 0:
                dep = np.exp(np.minimum(d_c, 0.0) / np.float32(6.0)) * np.clip((m.sin - 0.3) / 0.7, 0.0, 1.0)
                val += np.float32(p.dep_hu) * dep
            self._add_fissures(val, m, t)
            if self.emph is not None:
                e = self.emph.slice(m_index)
                thr = np.float32(2.3 - 6.0 * p.emphysema + 0.6 * t)
                mix = np.clip((e - thr) * 2.0, 0.0, 1.0)
                val += mix * (np.float32(-975.0) - val)
            _paint(out, lung, val)
        # heart
        h = p.heart
        if abs(t - h["t"]) * H < 1.3 * h["c"]:
            r = 1.2 * max(h["a"], h["b"]) + h["fat"] + 3.0
            sl = self._box(h["x"], h["y"], r, r)
            mm = self._sub(sl)
            cut = _soft((np.float32(t) - mm.t_dome) * np.float32(H) * mm.dome_g + 2.0, w)
            cut *= _soft(d_c[sl] + 2.0, w)
            sub = out[sl]
            _paint(sub, _soft(p.heart_d(mm.bx, mm.by, t, grow=h["fat"]), w) * cut, p.med_fat_hu - 10.0)
            _paint(sub, _soft(p.heart_d(mm.bx, mm.by, t), w) * cut, p.myo_hu)
            if p.contrast:
                _paint(sub, _soft(p.heart_d(mm.bx, mm.by, t, grow=-7.0), w) * cut, 0.5 * (p.aorta_hu + p.pa_hu))
        self._spine(out, t)
        self._ribs(out, m, d_c, t)
        self._sternum(out, t)
        self._scapulae(out, m, d_c, t)

    def _box(self, bx: float, by: float, hx: float, hy: float) -> tuple[slice, slice]:
        """Crop-relative (rows, columns) covering body-frame box centre (bx, by), half sizes (hx, hy)."""
        p = self.p
        sy, sx = float(self.spacing[1]), float(self.spacing[2])
        j0 = int(np.clip(math.floor((p.y0 + by - hy - self.origin[1]) / sy) - self.j0, 0, self.cy))
        j1 = int(np.clip(math.ceil((p.y0 + by + hy - self.origin[1]) / sy) + 1 - self.j0, 0, self.cy))
        i0 = int(np.clip(math.floor((p.x_mid + bx - hx - self.origin[2]) / sx) - self.i0, 0, self.cx))
        i1 = int(np.clip(math.ceil((p.x_mid + bx + hx - self.origin[2]) / sx) + 1 - self.i0, 0, self.cx))
        return slice(j0, max(j0, j1)), slice(i0, max(i0, i1))

    def _sub(self, sl: tuple[slice, slice]) -> _Maps:
        m = self.m
        return _Maps(**{k: (v[sl] if isinstance(v, np.ndarray) and v.ndim == 2 else v) for k, v in m.__dict__.items()})

    def _abdomen(self, out: F32, m: _Maps, d_c: F32, t: float) -> None:
        p, w, H = self.p, self.edge, self.p.H
        dd = (m.t_dome - np.float32(t)) * np.float32(H) * m.dome_g  # > 0 above the diaphragm
        if float(dd.min()) > 2 * w:
            return
        _paint(out, _soft(dd, w) * _soft(d_c, w), p.muscle_hu)
        inner = _soft(dd + 4.0, w) * _soft(d_c + 3.0, w)
        _paint(out, inner, -45.0)
        x_lv = float(np.interp(t - p.t_dr, [0.0, 0.08, 0.25, 0.6], [0.35 * p.W, 0.2 * p.W, 0.0, -0.25 * p.W]))
        _paint(out, inner * _soft(m.bx - x_lv, w), p.liver_hu)
        for cx, cy, ct, sa, sb, sc, kind in (
            (0.62 * p.W, 0.5 * p.Dp, p.t_dl + 0.13, 0.22 * p.W, 0.3 * p.Dp, 0.11 * H, "spleen"),
            (0.4 * p.W, -0.12 * p.Da, p.t_dl + 0.12, 0.3 * p.W, 0.42 * p.Da, 0.12 * H, "stomach"),
        ):
            zz = (t - ct) * H / sc
            if abs(zz) >= 1:
                continue
            s = math.sqrt(1 - zz * zz)
            sl = self._box(cx, cy, sa * s + 3, sb * s + 3)
            mm = self._sub(sl)
            sub = out[sl]
            inn = inner[sl]
            d = _ellipse_d(mm.bx - cx, mm.by - cy, sa * s, sb * s)
            if kind == "spleen":
                _paint(sub, _soft(d, w) * inn, p.spleen_hu)
            else:
                _paint(sub, _soft(d, w) * inn, p.muscle_hu)
                lumen = _soft(d + 3.0, w) * inn
                _paint(sub, lumen, p.stomach_hu)
                air = _soft((mm.by - (cy - 0.15 * sb * s)), w) * lumen
                _paint(sub, air, AIR_HU)

    def _add_fissures(self, val: F32, m: _Maps, t: float) -> None:
        """Add the major fissures (oblique) and the right minor fissure (nearly horizontal) to the lung
        HU ``val``: thin lines with a triangular profile of the fissure's integrated density."""
        p, H, wf = self.p, self.p.H, self.fiss_w
        by = m.by[:, 0].astype(np.float64)
        bx = m.bx[0, :].astype(np.float64)
        xq = 0.04 * (bx / p.W) ** 2 + p.fiss_tilt * np.abs(bx - p.xm) / p.W
        span = 0.8 * (p.Dp + p.Da)
        amp = np.float32(p.fiss_amp / wf)
        cols_l = np.flatnonzero(bx > p.xm)
        cols_r = np.flatnonzero(bx <= p.xm)
        t_major_r = None
        for cols, (t_post, t_ant) in ((cols_l, p.fiss_l), (cols_r, p.fiss_r)):
            if len(cols) == 0:
                continue
            slope = (t_ant - t_post) / span
            t_row = t_post + slope * (0.8 * p.Dp - by)
            if cols is cols_r:
                t_major_r = (t_row, slope)
            norm = 1.0 / math.sqrt(1.0 + (H * slope) ** 2)
            reach = wf / (H * norm)
            rows = np.flatnonzero((t - t_row > -reach) & (t - t_row < xq.max() + reach))
            if len(rows) == 0:
                continue
            rs, cs = slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)
            tf = t_row[rs, None] + xq[None, cs]
            dist = np.abs(t - tf) * (H * norm)
            val[rs, cs] += (np.clip(1.0 - dist / wf, 0.0, 1.0) * amp).astype(np.float32)
        cols = np.flatnonzero(bx < p.xm - 20.0)
        if len(cols) and t_major_r is not None:
            th = p.fiss_minor + 0.03 * (by / p.Da)
            rows = np.flatnonzero(np.abs(t - th) * H < wf)
            if len(rows):
                rs, cs = slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)
                dist = np.abs(t - th[rs, None]) * H
                anterior = t < (t_major_r[0][rs, None] + xq[None, cs])
                tri = np.clip(1.0 - dist / wf, 0.0, 1.0) * amp * anterior
                val[rs, cs] += tri.astype(np.float32)

    def _spine(self, out: F32, t: float) -> None:
        p, w = self.p, self.edge
        av, bv, yv = (float(v) for v in p.spine(t))
        rc = p.canal_r
        canal_y = yv + bv + 1.5 + rc
        sl = self._box(0.0, yv + 20.0, av + 40.0, bv + 30.0 + p.spinous)
        mm = self._sub(sl)
        sub = out[sl]
        lev = int(np.searchsorted(p.levels, t)) - 1
        lev = int(np.clip(lev, 0, len(p.levels) - 2))
        phase = (t - p.levels[lev]) / (p.levels[lev + 1] - p.levels[lev])
        bx, by = mm.bx, mm.by
        d_vb = _ellipse_d(bx, by - yv, av, bv)
        if phase > 0.84:
            _paint(sub, _soft(d_vb, w), p.disc_hu)
        else:
            _paint(sub, _soft(d_vb, w), p.cortex_hu)
            if 0.05 < phase < 0.79:
                _paint(sub, _soft(d_vb + 1.3, w), p.vert_hu)
        bone = 0.55 * p.cortex_hu + 0.45 * p.marrow_hu
        rr = np.hypot(bx, by - canal_y)
        ring = _soft(np.abs(rr - (rc + 2.6)) - 2.6, w) * _soft(canal_y - 0.5 * rc - by, w)
        _paint(sub, ring, bone)
        if phase > 0.2:
            lsp = p.spinous
            cy = canal_y + rc + 2.0 + 0.5 * lsp
            _paint(sub, _soft(np.maximum(np.abs(bx) - 3.5, np.abs(by - cy) - 0.5 * lsp), w), bone)
        if phase < 0.55:
            ca, sa = math.cos(math.radians(25)), math.sin(math.radians(25))
            for side in (-1.0, 1.0):
                ux, uy = side * bx - (rc + 1.0), by - (canal_y - 3.0)
                along = ux * ca + uy * sa
                across = -ux * sa + uy * ca
                d = np.maximum(np.abs(along - 11.0) - 11.0, np.abs(across) - 4.0)
                _paint(sub, _soft(d, w), bone)
        _paint(sub, _soft(rr - rc, w), p.csf_hu)

    def _ribs(self, out: F32, m: _Maps, d_c: F32, t: float) -> None:
        p, w, H = self.p, self.edge, self.p.H
        gap, hr, hz = 1.0, p.rib_hr, p.rib_hz
        band = (d_c > -1.0) & (d_c < gap + 2 * hr + 1.5) & (m.s_param > 0.02) & (m.s_param < 0.985)
        idx = np.nonzero(band)
        if len(idx[0]) == 0:
            return
        s = m.s_param[idx]
        dc = d_c[idx]
        # the rib neck runs nearly level from the head, the shaft descends most steeply laterally,
        # the costal cartilage rises again towards the sternum
        drop = 0.5 - 0.5 * np.cos(np.pi * np.clip((s - 0.05) / 0.7, 0.0, 1.0)) - 1.2 * np.maximum(s - 0.75, 0.0)
        t_head = np.float32(t) - np.float32(p.rib_drop / H) * drop
        heads = p.rib_heads.astype(np.float32)
        n = np.clip(np.searchsorted(heads, t_head), 1, len(heads) - 1)
        n = np.where(np.abs(t_head - heads[n - 1]) < np.abs(t_head - heads[n]), n - 1, n)
        dz = (t_head - heads[n]) * np.float32(H)
        s_end = p.rib_ends[n].astype(np.float32)
        q = np.sqrt((dz / hz) ** 2 + ((dc - (gap + hr)) / hr) ** 2)
        arc = np.float32(math.pi) * m.r[idx]
        occ = _soft((q - 1.0) * hr, w) * _soft((s - s_end) * arc, w) * _soft((0.035 - s) * arc, w)
        if not occ.any():
            return
        cart = (s > s_end - 0.2) & (n < 10)
        vals = out[idx]
        vals += occ * (np.where(cart, np.float32(p.cart_hu), np.float32(p.cortex_hu)) - vals)
        inner = _soft((q - 1.0) * hr + 1.2, w) * occ * ~cart
        vals += inner * (np.float32(p.marrow_hu) - vals)
        out[idx] = vals

    def _sternum(self, out: F32, t: float) -> None:
        if not 0.1 < t < 0.8:
            return
        p, w = self.p, self.edge
        _, ba, _ = p.cavity_axes(t)
        hs = p.sternum_h
        ys = -float(ba) - 1.0 - hs
        half = float(np.interp(t, [0.1, 0.22, 0.3, 0.7, 0.8], [22.0, 20.0, 13.0, 12.0, 5.0]))
        taper = float(_smoothstep(0.1, 0.13, t))
        sl = self._box(0.0, ys, half + 3, hs + 3)
        mm = self._sub(sl)
        d = _ellipse_d(mm.bx, mm.by - ys, half * taper + 0.01, hs)
        _paint(out[sl], _soft(d, w), p.cortex_hu)
        _paint(out[sl], _soft(d + 1.2, w), p.marrow_hu)

    def _scapulae(self, out: F32, m: _Maps, d_c: F32, t: float) -> None:
        if not -0.3 < t < 0.45:
            return
        p, w = self.p, self.edge
        lo = float(np.interp(t, [-0.3, 0.2, 0.45], [0.42, 0.52, 0.8]))
        hi = float(np.interp(t, [-0.3, 0.2, 0.45], [1.3, 1.22, 0.84]))
        th = 6.0 if t < 0.02 else 3.0
        band = (d_c > p.scap_d - 2) & (d_c < p.scap_d + th + 2) & (m.theta_side > lo - 0.1) & (m.theta_side < hi + 0.1)
        idx = np.nonzero(band)
        if len(idx[0]) == 0:
            return
        dc, th_s, r = d_c[idx], m.theta_side[idx], m.r[idx]
        d = np.maximum(np.abs(dc - (p.scap_d + 0.5 * th)) - 0.5 * th, np.maximum(lo - th_s, th_s - hi) * r)
        vals = out[idx]
        vals += _soft(d, w) * (np.float32(0.6 * p.cortex_hu + 0.4 * p.marrow_hu) - vals)
        out[idx] = vals

# ================================================================================================
# Tubes of one patient (great vessels, airways, lung vessel trees)
# ================================================================================================
def _sample_lung_points(p: _Patient, rng: np.random.Generator, n: int, left: bool) -> F64:
    pts: list[F64] = []
    have = 0
    for _ in range(40):
        k = max(2000, 3 * n)
        bx = rng.uniform(-1.1 * p.W, 1.1 * p.W, k)
        bx = np.abs(bx) if left else -np.abs(bx)
        by = rng.uniform(-1.05 * p.Da, 1.05 * p.Dp, k)
        t = rng.uniform(0.0, 1.02, k)
        m = p.maps(bx, by)
        keep = (p.lung_occupancy(m, t) > 0.5) & (p.side_of(bx) == left)
        if keep.any():
            pts.append(np.stack([bx[keep], by[keep], t[keep]], axis=-1))
            have += int(keep.sum())
        if have >= n:
            break
    if not pts:
        return np.zeros((0, 3))
    allp = np.concatenate(pts)[:n]
    return np.stack([p.x_mid + allp[:, 0], p.y0 + allp[:, 1], p.z_apex - allp[:, 2] * p.H], axis=-1)


def _lung_at(p: _Patient, xyz: F64) -> F32:
    """Analytic lung occupancy at LPS points (n, 3)."""
    xyz = np.atleast_2d(xyz)
    bx, by = xyz[:, 0] - p.x_mid, xyz[:, 1] - p.y0
    return p.lung_occupancy(p.maps(bx, by), p.t_of(xyz[:, 2]))


def _build_tubes(p: _Patient, rng: np.random.Generator, px: float) -> list[_Tubes]:
    W, Da = p.W, p.Da
    _, bv, yv = (float(v) for v in p.spine(0.15))
    y_tr = yv - bv - 21.0
    xyz = p.xyz
    tubes: list[_Tubes] = []
    carina = xyz(-1.0, y_tr - 3.0, p.t_carina)

    # oesophagus and great vessels
    eso = _polyline(
        [xyz(6, y_tr + 15, -0.6), xyz(8, y_tr + 16, 0.5), xyz(0.25 * W, -0.05 * Da, p.t_dl + 0.09)], [7, 7, 8]
    )
    tubes.append(_Tubes(eso, p.muscle_hu * 0.8, "max"))
    aorta_pts = [
        xyz(0.03 * W, -0.1 * Da, 0.52),
        xyz(-0.08 * W, -0.35 * Da, 0.42),
        xyz(-0.07 * W, -0.33 * Da, 0.3),
        xyz(0.0, -0.2 * Da, 0.22),
        xyz(0.1 * W, 0.0, 0.2),
    ]
    aorta_r = [14.0, 15.0, 15.0, 14.0, 13.0]
    for tt in (0.27, 0.4, 0.6, 0.8, 1.0, 1.2, 1.45):
        bx, by, r = (float(v) for v in p.aorta_desc(tt))
        aorta_pts.append(xyz(bx, by, tt))
        aorta_r.append(r)
    tubes.append(_Tubes(_polyline(aorta_pts, aorta_r), p.aorta_hu, "max"))
    branches = [
        (
            [xyz(-0.02 * W, -0.22 * Da, 0.22), xyz(-0.1 * W, -0.2 * Da, 0.05), xyz(-0.14 * W, -0.1 * Da, -0.6)],
            [6.5, 6, 5],
        ),
        ([xyz(0.04 * W, -0.12 * Da, 0.21), xyz(0.09 * W, -0.12 * Da, -0.6)], [4.5, 4]),
        ([xyz(0.09 * W, 0.0, 0.21), xyz(0.16 * W, 0.02 * Da, 0.02), xyz(0.45 * W, -0.05 * Da, -0.12)], [5.5, 5, 4.5]),
    ]
    for pts, radii in branches:
        tubes.append(_Tubes(_polyline(pts, radii), p.aorta_hu, "max"))
    svc = _polyline([xyz(-0.22 * W, -0.25 * Da, -0.6), xyz(-0.2 * W, -0.22 * Da, 0.48)], [9, 10])
    tubes.append(_Tubes(svc, p.vein_hu, "max"))
    ra_root = xyz(-0.3 * W, y_tr - 4.0, 0.4)
    la_root = xyz(0.29 * W, y_tr + 4.0, 0.36)
    bif = xyz(0.05 * W, -0.12 * Da, 0.36)
    trunk = _polyline([xyz(0.14 * W, -0.5 * Da, 0.5), xyz(0.08 * W, -0.3 * Da, 0.42), bif], [14, 14, 13])
    rpa = _polyline([bif, xyz(-0.15 * W, -0.05 * Da, 0.37), ra_root], [11, 10, 8])
    lpa = _polyline([bif, xyz(0.2 * W, 0.0, 0.33), la_root], [10, 9, 8])
    for seg in (trunk, rpa, lpa):
        tubes.append(_Tubes(seg, p.pa_hu, "max"))
    h = p.heart
    la = xyz(0.05 * W, h["y"] + 0.5 * h["b"], h["t"] - 0.06)
    rv_root = xyz(-0.27 * W, -0.05 * Da, 0.52)
    lv_root = xyz(0.27 * W, 0.0, 0.5)
    for root in (rv_root, lv_root):
        tubes.append(_Tubes(_polyline([root, la], [7, 8]), p.vein_hu, "max"))

    # trachea and main bronchi
    tr_top = xyz(-2.0, y_tr, -0.6)
    r_tr = p.trachea_r
    aw_roots = {False: xyz(-0.27 * W, y_tr + 2.0, 0.38), True: xyz(0.27 * W, y_tr + 8.0, 0.41)}
    walls = [_polyline([tr_top, carina], [r_tr, r_tr])]
    lumens = [_polyline([tr_top, carina], [r_tr - 2.0, r_tr - 2.0])]

    # lung vessel trees and the bronchi along the arteries
    density = float(np.clip((0.75 / px) ** 2, 0.05, 1.0))
    r_min = max(0.5, 0.25 * px)
    art_segs: list[list[float]] = []
    vein_segs: list[list[float]] = []
    for left in (False, True):
        n_pts = int(4000 * density * (0.9 if left else 1.1))
        n_pts = max(n_pts, 40)
        for kind, root in (("artery", la_root if left else ra_root), ("vein", lv_root if left else rv_root)):
            pts = _sample_lung_points(p, rng, n_pts, left)
            if len(pts) < 8:
                continue
            first = pts.mean(axis=0) - root
            first /= np.linalg.norm(first)
            segs, gens = _grow_tree(rng, root, pts, 6.0, r_min, first)
            # branches heading for the centroid of a curved region can cut through the heart or the
            # mediastinum: beyond the hilum keep only segments whose middle lies in the lung
            in_lung = _lung_at(p, 0.5 * (segs[:, 0:3] + segs[:, 3:6])) > 0.5
            ok = in_lung | (gens <= 1)
            segs, gens = segs[ok], gens[ok]
            (art_segs if kind == "artery" else vein_segs).extend(segs.tolist())
            if kind != "artery":
                continue
            ref = rng.standard_normal(3)
            ref /= np.linalg.norm(ref)
            aw_min = max(1.3, 0.8 * px)
            main_end = None
            tree = [
                (row[0:3], row[3:6], float(row[6]), float(row[7]), int(g)) for row, g in zip(segs, gens, strict=True)
            ]
            cand = [(a, b, r0, gen) for a, b, r0, _r1, gen in tree if r0 >= aw_min and gen <= 9]
            offs = []
            for a, b, r0, _gen in cand:
                d = b - a
                d = d / (np.linalg.norm(d) + 1e-9)
                o = ref - (ref @ d) * d
                offs.append(o / (np.linalg.norm(o) + 1e-9) * (2.0 * r0 + 0.4))
            if cand:
                probe = np.array(
                    [[a + o, b + o, 0.5 * (a + b) + o] for (a, b, _, _), o in zip(cand, offs, strict=True)]
                )
                inside = _lung_at(p, probe.reshape(-1, 3)).reshape(-1, 3).min(axis=1) >= 0.5
            for ((a, b, r0, gen), off), ok in zip(zip(cand, offs, strict=True), inside if cand else [], strict=True):
                if gen > 0 and not ok:
                    continue  # bronchi stay inside the lung
                rb = r0
                wall_t = max(0.5, 0.17 * rb)
                walls.append(np.array([[*(a + off), *(b + off), rb, rb * 0.96]]))
                lumens.append(np.array([[*(a + off), *(b + off), rb - wall_t, rb * 0.96 - wall_t]]))
                if gen == 0:
                    main_end = a + off
            end = main_end if main_end is not None else aw_roots[left]
            r_main = 7.0 if not left else 6.0
            walls.append(_polyline([carina, end], [r_main, r_main * 0.9]))
            lumens.append(_polyline([carina, end], [r_main - 1.5, r_main * 0.9 - 1.5]))
    tubes.append(_Tubes(np.asarray(art_segs).reshape(-1, 8), p.pa_hu, "max"))
    tubes.append(_Tubes(np.asarray(vein_segs).reshape(-1, 8), p.vein_hu, "max"))
    tubes.append(_Tubes(np.concatenate(walls), p.muscle_hu * 0.7, "max"))
    tubes.append(_Tubes(np.concatenate(lumens), AIR_HU, "paint"))
    # clavicles
    for side in (-1.0, 1.0):
        _, ba, _ = p.cavity_axes(0.08)
        pts = [
            xyz(side * 20.0, -float(ba) - 10.0, 0.06),
            xyz(side * 0.55 * W, -0.65 * Da, -0.02),
            xyz(side * 0.85 * W, -0.15 * Da, -0.12),
        ]
        tubes.append(_Tubes(_polyline(pts, [7, 6, 6.5]), p.cortex_hu, "max"))
        tubes.append(_Tubes(_polyline(pts, [5.5, 4.5, 5]), p.marrow_hu, "paint"))
    return tubes
