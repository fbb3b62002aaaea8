"""Writing a synthetic scan as a DICOM series with its annotations (:func:`write_scan`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.uid import generate_uid

from nodeview.core.io.dicom_write import SeriesSpec, write_series
from training.data.annotations import ScanRecord
from training.data.synth.generator import generate_scan_full


def write_scan(
    out_dir: str | Path,
    seed: int,
    shape_zyx: Sequence[int] | None = None,
    spacing_zyx: Sequence[float] | None = None,
    n_nodules: tuple[int, int] | int = (0, 4),
    scan_id: str | None = None,
    **options: object,
) -> ScanRecord:
    """Generate the scan of ``seed`` and write it as one DICOM series into ``out_dir``.

    File names are shuffled in about 40 % of scans; stored values are signed when the scan holds
    padding below -1024 HU (and in some other scans), with RescaleIntercept -1024.

    Returns:
        A :class:`ScanRecord` whose ``path`` is ``out_dir`` (opens with
        :func:`nodeview.core.io.study.open_study`), ``fold = seed % 10``, ``source = "synthetic"``.
    """
    scan = generate_scan_full(seed, shape_zyx, spacing_zyx, n_nodules, **options)  # type: ignore[arg-type]
    vol = scan.volume
    naming = np.random.default_rng([int(seed), 3])
    shuffled = bool(naming.random() < 0.4)
    signed = bool(naming.random() < 0.3) or int(vol.hu_zyx.min()) < -1024
    d = vol.geometry.direction
    spec = SeriesSpec(
        spacing_zyx=tuple(float(v) for v in vol.geometry.spacing_zyx),  # type: ignore[arg-type]
        origin_xyz=tuple(float(v) for v in vol.geometry.origin_xyz),  # type: ignore[arg-type]
        orientation=tuple(float(v) for v in (*d[:, 0], *d[:, 1])),
        patient_position=vol.patient_position,
        series_uid=vol.series_uid,
        study_uid=str(generate_uid(entropy_srcs=["nodeview-synth-ct", "study", str(seed)])),
        frame_of_reference_uid=str(generate_uid(entropy_srcs=["nodeview-synth-ct", "for", str(seed)])),
        series_description=vol.description,
        slice_thickness=vol.slice_thickness_mm,
        rescale_intercept=-1024.0,
        pixel_representation=1 if signed else 0,
        file_names="shuffled" if shuffled else "instance",
        patient_name=vol.patient.name,
        patient_id=vol.patient.patient_id,
        accession_number=f"SYN{seed:07d}",
        seed=int(seed),
    )
    write_series(vol.hu_zyx, out_dir, spec)
    return ScanRecord(
        scan_id=scan_id or f"synth-{seed:06d}",
        path=str(out_dir),
        nodules=tuple(scan.annotations),
        fold=int(seed) % 10,
        series_uid=vol.series_uid,
        source="synthetic",
    )
