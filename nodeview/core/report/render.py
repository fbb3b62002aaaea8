"""Annotated PNG reports of a detection, with a ``nodeview.findings/2`` JSON sidecar (Qt-free).

What a report contains
    Page 1: a header (patient name, ID, birth date, study date, series; or "anonymized"; model
    name, version, SHA-256 and operating threshold; the research-use disclaimer), an overview (a
    coronal average-intensity projection of the whole scan, like a scout, with every reported
    finding marked and numbered) and the table of findings (#, location, diameter, volume, type,
    nodule score, malignancy, Lung-RADS hint, review, key-image page). Then one row of key images
    per reported finding: axial, coronal and sagittal crops at lung window through the finding's
    centre with its box, and a magnified axial crop. Rows that do not fit on page 1 go on further
    pages, :data:`ROWS_PER_PAGE` at most per page; every page repeats the study line, "page k of
    n" and the disclaimer.

Which findings
    Findings with nodule score >= the operating threshold. Each has a review status
    (:data:`ACCEPTED`, :data:`REJECTED` or :data:`UNREVIEWED`; the CLI has no review, so all are
    unreviewed). Accepted and unreviewed findings get key images, with their status shown;
    rejected ones are listed in a separate small table, without key images, and are not marked on
    the overview. The report says so in a line of text.

Images
    Views follow :mod:`nodeview.core.views` (the viewer's radiological convention: patient right
    on the image left, anterior up in axial, superior up in coronal and sagittal) and are
    resampled to square millimetre pixels, the finding's centre exactly at the crop's centre.
    Lung window (W 1500 / L -600). Orientation letters at the crop edges, a 10 mm (5 mm when
    magnified) scale bar. Box colour = malignancy, green (0) to yellow (0.5) to red (1), as in
    the viewer.

Privacy
    The file name never contains patient data (see :func:`default_stem`). PNG text chunks carry
    only the software version, the model's SHA-256, the creation time and the disclaimer. With
    ``anonymize`` the header shows "anonymized" for name, ID and birth date, the series
    description is redacted if it contains any of them, and the JSON has no patient ID; the
    study date stays, so the report can be matched to its study.

Files
    ``STEM.png``, ``STEM-p2.png``, ... and ``STEM.json``, written as one set by
    :func:`.outputs.write_file_set`: every file complete under a hidden temporary name first, then
    each name claimed with an exclusive link (never replacing a file unless ``overwrite``), the
    JSON sidecar last; a failed claim removes the names already claimed. The folder and the names
    are checked before rendering (:func:`check_report_target`) and again at the claim.
"""

from __future__ import annotations

import colorsys
import contextlib
import hashlib
import io
import json
import math
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo
from scipy import ndimage

from ... import __version__
from ...resources import resources_dir
from ..detect.detector import DetectionResult, ModelInfo
from ..detect.findings import Finding, format_score
from ..errors import InputError, NodeViewError
from ..followup.compare import Comparison, suggestion_for
from ..followup.findings_doc import findings_document
from ..followup.impression import build_impression
from ..outputs import OutputExistsError, OutputWriteError, check_writable_folder, write_file_set
from ..privacy import contains_patient_text, identifying_tokens
from ..progress import ProgressFn, StopFn, check_cancel, never_stop, no_progress
from ..views import ViewKind, ViewPlane, box_on_slice
from ..volume import Volume
from ..windowing import PRESETS

ACCEPTED, REJECTED, UNREVIEWED = "accepted", "rejected", "unreviewed"
REVIEW_STATES = (ACCEPTED, REJECTED, UNREVIEWED)
DISCLAIMER = (
    "RESEARCH USE ONLY - not a medical device, not a diagnosis. The findings are computer-generated "
    "suggestions; a qualified reader must check them on the images."
)
SELECTION_RULE = (
    "Reported: findings with nodule score ≥ {threshold}. Key images for accepted and unreviewed findings; "
    "findings rejected by the reader are listed without key images."
)

PAGE_WIDTH = 1800
MAX_PAGE_HEIGHT = 2546  # A4 proportions at this width: pages print and file as A4
ROWS_PER_PAGE = 5
CROP_PX = 320
CROP_FOV_MM = 80.0  # at least; grows to 3x the finding's diameter
ZOOM_FOV_MM = 20.0  # at least; grows to 1.6x the diameter
FONT_FILES = {"regular": "DejaVuSans.ttf", "bold": "DejaVuSans-Bold.ttf"}

_MARGIN = 40
_CONTENT_W = PAGE_WIDTH - 2 * _MARGIN
_OVERVIEW_BOX = (660, 760)  # max width, height of the overview image
_ROW_H = 380
_INK = (25, 28, 33)
_MUTED = (92, 97, 105)
_RULE = (196, 201, 208)
_ACCENT = (22, 58, 104)
_WARN_BG = (252, 234, 231)
_WARN_INK = (150, 24, 18)
_HEAD_BG = (229, 234, 241)
_ZEBRA = (246, 247, 249)
_WHITE = (255, 255, 255)
_BLACK = (0, 0, 0)
_REVIEW_INK = {ACCEPTED: (20, 120, 50), UNREVIEWED: (150, 95, 0), REJECTED: (140, 140, 140)}

RGB = tuple[int, int, int]


class ReportExistsError(OutputExistsError):
    """A report file already exists and ``overwrite`` was not given."""


class ReportWriteError(NodeViewError):
    """The report could not be written (folder not writable, disk full, ...)."""


class FontMissingError(NodeViewError):
    """A font bundled with NodeView (``resources/fonts``) is missing: the installation is broken."""


# ---- layout metadata --------------------------------------------------------------------------
@dataclass(frozen=True)
class CropRect:
    """Where one key image sits on its page (page pixels; the finding's centre at ``centre_xy``).

    Attributes:
        finding_id: the finding's number.
        view: "axial", "coronal", "sagittal" or "zoom" (the magnified axial crop).
        box: ``(x0, y0, x1, y1)``, x1/y1 exclusive.
        centre_xy: page pixel (fractional) where the finding's centre is drawn.
        mm_per_px: displayed millimetres per page pixel.
        slice_index: the view's slice through the finding (0-based).
    """

    finding_id: int
    view: str
    box: tuple[int, int, int, int]
    centre_xy: tuple[float, float]
    mm_per_px: float
    slice_index: int


@dataclass(frozen=True)
class ReportPage:
    """One rendered page and where things are on it (for tests and callers that check layout)."""

    image: Image.Image
    number: int
    n_pages: int
    crops: tuple[CropRect, ...]
    overview_box: tuple[int, int, int, int] | None
    texts: tuple[str, ...] = field(repr=False)  # every string drawn on the page


# ---- selection and names -----------------------------------------------------------------------
def review_of(reviews: Mapping[int, str], finding_id: int) -> str:
    status = reviews.get(finding_id, UNREVIEWED)
    if status not in REVIEW_STATES:
        raise ValueError(f"review status must be one of {REVIEW_STATES}, got {status!r}")
    return status


def select_findings(
    findings: Sequence[Finding], reviews: Mapping[int, str], threshold: float
) -> tuple[list[Finding], list[Finding]]:
    """(reported with key images, rejected): findings with score >= threshold, best score first."""
    shown = sorted((f for f in findings if f.score >= threshold), key=lambda f: (-f.score, f.id))
    keyed = [f for f in shown if review_of(reviews, f.id) != REJECTED]
    rejected = [f for f in shown if review_of(reviews, f.id) == REJECTED]
    return keyed, rejected


def _identifying_tokens(volume: Volume) -> list[str]:
    """Patient strings and their parts (:func:`.privacy.identifying_tokens`)."""
    return identifying_tokens(volume.patient)


def contains_patient_data(text: str, volume: Volume) -> bool:
    return contains_patient_text(text, volume.patient)


def default_stem(volume: Volume) -> str:
    """``nodeview-report_<StudyDate|nodate>_<series description|series>_<sha1(series UID)[:8]>``.

    Never contains patient name, ID, birth date or accession number (a description that contains
    one of them is replaced by "series"), anonymized or not.
    """
    date = volume.patient.study_date if re.fullmatch(r"\d{8}", volume.patient.study_date or "") else "nodate"
    if date in volume.patient.identifying_strings():
        date = "nodate"
    desc = re.sub(r"[^A-Za-z0-9.]+", "-", volume.description).strip("-.")[:40].strip("-.")
    if not desc or contains_patient_data(volume.description, volume):
        desc = "series"
    uid = volume.series_uid or f"{volume.description}|{volume.shape_zyx}"
    return f"nodeview-report_{date}_{desc}_{hashlib.sha1(uid.encode()).hexdigest()[:8]}"


def report_paths(out_dir: str | os.PathLike[str], stem: str, n_pages: int) -> list[Path]:
    """The files a report of ``n_pages`` pages writes: pages first, then the JSON sidecar."""
    folder = Path(out_dir)
    pages = [folder / (f"{stem}.png" if k == 1 else f"{stem}-p{k}.png") for k in range(1, n_pages + 1)]
    return [*pages, folder / f"{stem}.json"]


def existing_report_files(out_dir: str | os.PathLike[str], stem: str) -> list[Path]:
    """Files of an earlier report with this stem (``STEM.png``, ``STEM-pK.png``, ``STEM.json``)."""
    folder = Path(out_dir)
    if not folder.is_dir():
        return []
    pattern = re.compile(re.escape(stem) + r"(-p\d+)?\.png|" + re.escape(stem) + r"\.json")
    return sorted(p for p in folder.iterdir() if pattern.fullmatch(p.name))


# ---- fonts -------------------------------------------------------------------------------------
def font_path(style: str = "regular") -> Path:
    return resources_dir() / "fonts" / FONT_FILES[style]


@lru_cache(maxsize=32)
def _font_cached(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def load_font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    """A bundled TrueType font; :class:`FontMissingError` if it is not there (never a bitmap font)."""
    path = font_path("bold" if bold else "regular")
    if not path.is_file():
        raise FontMissingError(f"the font {path.name} that NodeView ships is missing from {path.parent}; reinstall")
    try:
        return _font_cached(str(path), size)
    except OSError as exc:
        raise FontMissingError(f"the bundled font {path} cannot be read ({exc}); reinstall NodeView") from exc


@lru_cache(maxsize=4096)
def _has_glyph(path: str, char: str) -> bool:
    """Whether the font draws ``char`` (rather than its empty-box glyph)."""
    if char == " " or 0x21 <= ord(char) < 0x7F or 0xA0 <= ord(char) < 0x250:  # DejaVu has Latin-1 and Extended
        return True
    font = _font_cached(path, 20)

    def ink(c: str) -> bytes:
        img = Image.new("L", (40, 40), 0)
        ImageDraw.Draw(img).text((5, 5), c, font=font, fill=255)
        return img.tobytes()

    return ink(char) != ink("\U0010fffd")


# ---- drawing -------------------------------------------------------------------------------------
def malignancy_rgb(p: float) -> RGB:
    """Green (0) through yellow (0.5) to red (1), the viewer's box colours."""
    p = float(np.clip(p, 0.0, 1.0))
    r, g, b = colorsys.hsv_to_rgb((1.0 - p) / 3.0, 0.9, 1.0)
    return round(r * 255), round(g * 255), round(b * 255)


class _Canvas:
    """A white page that grows downwards; records every string drawn."""

    def __init__(self, height: int = 1200) -> None:
        self.image = Image.new("RGB", (PAGE_WIDTH, height), _WHITE)
        self.draw = ImageDraw.Draw(self.image)
        self.texts: list[str] = []

    def ensure(self, height: int) -> None:
        if height > self.image.height:
            bigger = Image.new("RGB", (PAGE_WIDTH, max(height, self.image.height * 3 // 2)), _WHITE)
            bigger.paste(self.image, (0, 0))
            self.image = bigger
            self.draw = ImageDraw.Draw(self.image)

    def width_of(self, text: str, size: int, bold: bool = False) -> float:
        return float(self.draw.textlength(text, font=load_font(size, bold)))

    def fit(self, text: str, size: int, width: float, bold: bool = False) -> str:
        """``text`` shortened with an ellipsis to fit ``width`` pixels."""
        if self.width_of(text, size, bold) <= width:
            return text
        while text and self.width_of(text + "…", size, bold) > width:
            text = text[:-1]
        return text.rstrip() + "…"

    def text(
        self,
        xy: tuple[float, float],
        text: str,
        size: int,
        fill: RGB = _INK,
        bold: bool = False,
        anchor: str = "la",
        stroke: RGB | None = None,
    ) -> float:
        """Draw one line; return its width. ``anchor`` as in Pillow (``la`` = left, ascender)."""
        font = load_font(size, bold)
        path = str(font_path("bold" if bold else "regular"))
        text = "".join(c if _has_glyph(path, c) else "?" for c in text)
        self.ensure(int(xy[1]) + 2 * size)
        self.texts.append(text)
        kwargs: dict[str, Any] = {"stroke_width": 2, "stroke_fill": stroke} if stroke is not None else {}
        self.draw.text(xy, text, font=font, fill=fill, anchor=anchor, **kwargs)
        return float(self.draw.textlength(text, font=font))

    def rect(
        self,
        box: tuple[float, float, float, float],
        fill: RGB | None = None,
        outline: RGB | None = None,
        width: int = 1,
    ) -> None:
        self.ensure(int(box[3]) + 1)
        self.draw.rectangle(box, fill=fill, outline=outline, width=width)

    def hline(
        self, y: float, x0: float = _MARGIN, x1: float = PAGE_WIDTH - _MARGIN, fill: RGB = _RULE, width: int = 1
    ) -> None:
        self.ensure(int(y) + width + 1)
        self.draw.line((x0, y, x1, y), fill=fill, width=width)

    def finish(self, height: int) -> Image.Image:
        self.ensure(height)
        return self.image.crop((0, 0, PAGE_WIDTH, height))


# ---- text helpers ------------------------------------------------------------------------------
def _format_date(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if re.fullmatch(r"\d{8}", value or "") else value


def _format_name(value: str) -> str:
    """DICOM person name ``FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX`` (alphabetic group) as ``FAMILY, Given Middle``."""
    parts = [p.strip() for p in (value or "").split("=")[0].split("^")]
    family, given = parts[0], " ".join(p for p in parts[1:3] if p)
    return f"{family}, {given}" if family and given else family or given


def _or_dash(value: str) -> str:
    return value if value.strip() else "-"


def _volume_text(mm3: float) -> str:
    return f"{mm3:,.0f}"


# ---- images -------------------------------------------------------------------------------------
def _window_u8(hu: NDArray[np.float32]) -> NDArray[np.uint8]:
    """Lung window; NaN (outside the scan) black."""
    lo, hi = PRESETS["lung"].levels
    scaled = (np.nan_to_num(hu, nan=lo - 1.0) - lo) * (255.0 / (hi - lo))
    return np.asarray(np.clip(scaled, 0, 255), dtype=np.uint8)


def _crop(
    volume: Volume, plane: ViewPlane, centre_xyz: tuple[float, float, float], fov_mm: float, size: int, order: int
) -> tuple[NDArray[np.float32], int, tuple[float, float]]:
    """A ``size`` x ``size`` HU image of ``fov_mm`` square, centred on the point, square pixels.

    Returns the image (NaN outside the scan), the slice index, and the centre's display (u, v) mm.
    """
    u_c, v_c, s = (float(x) for x in plane.index_to_display(volume.geometry.mm_to_index(centre_xyz)))
    k = int(np.clip(round(s), 0, plane.n_slices - 1))
    image = plane.extract(volume.hu_zyx, k)
    pu, pv = plane.pixel_mm
    step = fov_mm / size
    offsets = (np.arange(size) + 0.5 - size / 2.0) * step
    cols = (u_c + offsets) / pu - 0.5
    rows = (v_c + offsets) / pv - 0.5
    h, w = image.shape
    r0 = int(np.clip(math.floor(rows[0]) - 3, 0, h - 1))
    r1 = int(np.clip(math.ceil(rows[-1]) + 4, r0 + 1, h))
    c0 = int(np.clip(math.floor(cols[0]) - 3, 0, w - 1))
    c1 = int(np.clip(math.ceil(cols[-1]) + 4, c0 + 1, w))
    window = image[r0:r1, c0:c1].astype(np.float32)
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    out = ndimage.map_coordinates(window, [rr - r0, cc - c0], order=order, mode="nearest").astype(np.float32)
    outside = (rr < -0.5) | (rr > h - 0.5) | (cc < -0.5) | (cc > w - 0.5)
    out[outside] = np.nan
    return out, k, (u_c, v_c)


def _overview_image(volume: Volume) -> tuple[Image.Image, ViewPlane, float]:
    """Coronal average-intensity projection of the whole scan at square pixels; (image, plane, px/mm)."""
    plane = ViewPlane.for_geometry(volume.geometry, ViewKind.CORONAL)
    mean = volume.hu_zyx.mean(axis=plane.slice_axis, dtype=np.float32, keepdims=True)
    # a one-slice volume with the same axes: extract() applies the viewer's flips and transpose
    projection = plane.extract(np.rint(mean).astype(np.int16), 0).astype(np.float32)
    lo, hi = (float(v) for v in np.percentile(projection, [1.0, 99.7]))
    if hi - lo < 20:
        lo, hi = PRESETS["lung"].levels
    u8 = np.asarray(np.clip((projection - lo) * (255.0 / (hi - lo)), 0, 255), dtype=np.uint8)
    w_mm, h_mm = plane.size_mm
    scale = min(_OVERVIEW_BOX[0] / w_mm, _OVERVIEW_BOX[1] / h_mm)
    size = (max(1, round(w_mm * scale)), max(1, round(h_mm * scale)))
    return Image.fromarray(u8).resize(size, Image.Resampling.BILINEAR), plane, scale


# ---- the report -------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Context:
    volume: Volume
    model: ModelInfo
    threshold: float
    anonymize: bool
    created: datetime
    n_candidates: int | None
    reviews: Mapping[int, str]
    caveats: tuple[str, ...] = ()
    comparison: Comparison | None = None

    def patient_fields(self) -> list[tuple[str, str]]:
        p = self.volume.patient
        if self.anonymize:
            return [("Patient", "anonymized"), ("Patient ID", "anonymized"), ("Birth date", "anonymized")]
        return [
            ("Patient", _or_dash(_format_name(p.name))),
            ("Patient ID", _or_dash(p.patient_id)),
            ("Birth date", _or_dash(_format_date(p.birth_date))),
        ]

    def study_date_text(self) -> str:
        date = self.volume.patient.study_date
        if self.anonymize and date in self.volume.patient.identifying_strings():  # e.g. a newborn's birth date
            return "anonymized"
        return _or_dash(_format_date(date))

    def series_text(self) -> str:
        desc = self.volume.description
        if self.anonymize and contains_patient_data(desc, self.volume):
            return "(redacted)"
        return _or_dash(desc)

    def study_line(self) -> str:
        p = self.volume.patient
        who = "anonymized" if self.anonymize else f"{_format_name(p.name) or '-'}  ·  ID {_or_dash(p.patient_id)}"
        return f"Patient {who}  ·  Study date {self.study_date_text()}  ·  Series {self.series_text()}"

    def created_text(self) -> str:
        return self.created.isoformat(timespec="seconds")


def render_report(
    volume: Volume,
    findings: Sequence[Finding],
    reviews: Mapping[int, str],
    model: ModelInfo,
    threshold: float,
    *,
    anonymize: bool,
    created: datetime,
    n_candidates: int | None = None,
    caveats: Sequence[str] = (),
    progress: ProgressFn = no_progress,
    should_stop: StopFn = never_stop,
    comparison: Comparison | None = None,
) -> list[ReportPage]:
    """Render the report's pages (see the module docstring for what they contain).

    Args:
        volume: the study the findings were detected on.
        findings: all findings; those with score >= ``threshold`` are reported.
        reviews: finding id -> :data:`ACCEPTED`, :data:`REJECTED` or :data:`UNREVIEWED` (default).
        model: the model that produced the findings.
        threshold: the operating threshold (nodule score).
        anonymize: leave patient name, ID and birth date out (see the module docstring).
        created: creation time shown on every page.
        n_candidates: number of candidates the detector scored, shown when given.
        caveats: the detection's warnings (``DetectionResult.caveats``), printed under the findings.
        comparison: the comparison with a prior study (:mod:`.followup.compare`): the impression
            then carries the comparison line, and a table gives each finding's prior size, change
            and VDT, and the resolved prior findings.
    """
    if comparison is not None:
        caveats = (*caveats, *comparison.caveats)
    ctx = _Context(volume, model, threshold, anonymize, created, n_candidates, reviews, tuple(caveats), comparison)
    keyed, rejected = select_findings(findings, reviews, threshold)
    total_steps = 2 + len(keyed)
    progress(0, total_steps)
    first = _Canvas(MAX_PAGE_HEIGHT)
    y = _header_space()
    overview = _overview_image(volume)
    y, overview_box = _draw_summary(first, ctx, overview, keyed, rejected, y, page_of={})
    progress(1, total_steps)
    # how many key-image rows fit under the summary on page 1, then ROWS_PER_PAGE per page
    fit_first = max(0, min(ROWS_PER_PAGE, (MAX_PAGE_HEIGHT - _FOOTER_H - y - 50) // _ROW_H))
    rest = keyed[fit_first:]
    chunks = [keyed[:fit_first]] + [rest[i : i + ROWS_PER_PAGE] for i in range(0, len(rest), ROWS_PER_PAGE)]
    n_pages = len(chunks)
    page_of = {f.id: k + 1 for k, chunk in enumerate(chunks) for f in chunk}
    if n_pages > 1:  # redraw the table with the key-image page column
        first = _Canvas(MAX_PAGE_HEIGHT)
        y, overview_box = _draw_summary(first, ctx, overview, keyed, rejected, _header_space(), page_of=page_of)
    pages: list[ReportPage] = []
    done = 1
    for number, chunk in enumerate(chunks, start=1):
        canvas = first if number == 1 else _Canvas(MAX_PAGE_HEIGHT)
        if number > 1:
            y = _header_space(compact=True) + 6
        crops: list[CropRect] = []
        if chunk:
            y = _section_title(
                canvas,
                "Key images",
                y + 8,
                "axial, coronal and sagittal through the centre; magnified axial. Lung window W 1500 / L -600.",
            )
        for finding in chunk:
            check_cancel(should_stop)
            y, row_crops = _draw_key_row(canvas, ctx, finding, y)
            crops.extend(row_crops)
            done += 1
            progress(done, total_steps)
        height = max(y + 30, 900 if number == 1 else 0) + _FOOTER_H
        _draw_header(canvas, ctx, number, n_pages, compact=number > 1)
        _draw_footer(canvas, ctx, height, number, n_pages)
        image = canvas.finish(height)
        pages.append(
            ReportPage(image, number, n_pages, tuple(crops), overview_box if number == 1 else None, tuple(canvas.texts))
        )
    progress(total_steps, total_steps)
    return pages


_FOOTER_H = 64
_HEADER_H = 290
_HEADER_H_COMPACT = 150


def _header_space(compact: bool = False) -> int:
    return _HEADER_H_COMPACT if compact else _HEADER_H


def _draw_header(canvas: _Canvas, ctx: _Context, number: int, n_pages: int, compact: bool) -> None:
    """Title bar, disclaimer band, and (page 1) the patient / study / model columns."""
    canvas.rect((0, 0, PAGE_WIDTH, 70), fill=_ACCENT)
    canvas.text((_MARGIN, 35), "NodeView  ·  Lung nodule detection report", 30, _WHITE, bold=True, anchor="lm")
    canvas.text((PAGE_WIDTH - _MARGIN, 35), f"page {number} of {n_pages}", 20, _WHITE, anchor="rm")
    canvas.rect((0, 70, PAGE_WIDTH, 112), fill=_WARN_BG)
    canvas.hline(111, 0, PAGE_WIDTH, fill=(235, 190, 184))
    canvas.text((_MARGIN, 91), canvas.fit(DISCLAIMER, 18, _CONTENT_W, bold=True), 18, _WARN_INK, bold=True, anchor="lm")
    if compact:
        canvas.text((_MARGIN, 120), canvas.fit(ctx.study_line(), 19, _CONTENT_W), 19, _INK)
        canvas.hline(_HEADER_H_COMPACT - 4)
        return
    spacing = ctx.volume.spacing_zyx
    shape = ctx.volume.shape_zyx
    columns: list[tuple[str, list[tuple[str, str]]]] = [
        ("Patient", ctx.patient_fields()),
        (
            "Study",
            [
                ("Study date", ctx.study_date_text()),
                ("Series", ctx.series_text()),
                ("Scan", f"{shape[2]} × {shape[1]} × {shape[0]} voxels"),
                ("Voxel", f"{spacing[2]:.2f} × {spacing[1]:.2f} × {spacing[0]:.2f} mm"),
            ],
        ),
        (
            "Detection",
            [
                ("Model", ctx.model.label),
                ("SHA-256", ctx.model.sha256[:16] + "…" if len(ctx.model.sha256) > 16 else ctx.model.sha256),
                ("Threshold", f"nodule score ≥ {format_score(ctx.threshold)}"),
                ("Created", f"{ctx.created_text()}  ·  NodeView {__version__}"),
            ],
        ),
    ]
    widths = (470, 560, _CONTENT_W - 470 - 560)
    x = float(_MARGIN)
    for (title, rows), width in zip(columns, widths, strict=True):
        canvas.text((x, 130), title.upper(), 15, _MUTED, bold=True)
        for n, (label, value) in enumerate(rows):
            yy = 158 + n * 29
            canvas.text((x, yy), label, 17, _MUTED)
            canvas.text((x + 118, yy), canvas.fit(value, 18, width - 130, bold=True), 18, _INK, bold=True)
        x += width
    canvas.hline(_HEADER_H - 14, width=2, fill=_ACCENT)


def _draw_footer(canvas: _Canvas, ctx: _Context, height: int, number: int, n_pages: int) -> None:
    y = height - _FOOTER_H + 14
    canvas.hline(y, fill=_RULE)
    model = ctx.model.label
    canvas.text(
        (_MARGIN, y + 24),
        f"NodeView {__version__}  ·  model {model}  ·  created {ctx.created_text()}",
        15,
        _MUTED,
        anchor="lm",
    )
    canvas.text(
        (PAGE_WIDTH - _MARGIN, y + 24),
        f"Research use only, not a diagnosis  ·  page {number} of {n_pages}",
        15,
        _WARN_INK,
        anchor="rm",
    )


def _section_title(canvas: _Canvas, title: str, y: int, note: str = "") -> int:
    w = canvas.text((_MARGIN, y), title, 22, _ACCENT, bold=True)
    if note:
        canvas.text((_MARGIN + w + 16, y + 5), note, 16, _MUTED)
    return y + 40


_TABLE_COLUMNS: list[tuple[str, int, str]] = [  # header (lines split at "|"), width, align
    ("#", 44, "r"),
    ("Location", 130, "l"),
    ("Diameter|(mm)", 96, "r"),
    ("Volume|(mm³)", 96, "r"),
    ("Type", 126, "l"),
    ("Nodule|score", 88, "r"),
    ("Malig-|nancy", 88, "r"),
    ("Lung-RADS|hint", 110, "c"),
    ("Review", 128, "l"),
]
_REVIEW_COLUMN = 8
_PAGE_COLUMN = ("Key|images", 84, "c")


def _table_cells(f: Finding, review: str, page: int | None) -> list[str]:
    cells = [
        str(f.id),
        f.location,
        f"{f.diameter_mm:.1f}" + ("" if f.measured else "*"),
        _volume_text(f.volume_mm3) + ("" if f.measured else "*"),
        f.type,
        format_score(f.score),
        f"{f.malignancy:.2f}",
        f.lung_rads or "-",
        review,
    ]
    return [*cells, f"p. {page}"] if page is not None else cells


def _draw_table(
    canvas: _Canvas,
    x: int,
    y: int,
    columns: Sequence[tuple[str, int, str]],
    rows: Sequence[tuple[Sequence[str], Sequence[RGB]]],
    size: int = 17,
) -> int:
    """A table: header lines split at "|"; each row is (cells, ink per cell). Returns the y below it."""
    total_w = sum(w for _, w, _ in columns)
    n_head = max(len(title.split("|")) for title, _, _ in columns)
    head_h, row_h = 14 + 19 * n_head, round(size * 1.95)
    canvas.rect((x, y, x + total_w, y + head_h), fill=_HEAD_BG)
    cx = x
    for title, width, align in columns:
        lines = title.split("|")
        for n, line in enumerate(lines):
            y_mid = y + head_h / 2 + (n - (len(lines) - 1) / 2) * 19
            _cell(canvas, cx, y_mid, width, line, align, 15, _INK, bold=True)
        cx += width
    y += head_h
    for n, (cells, inks) in enumerate(rows):
        if n % 2:
            canvas.rect((x, y, x + total_w, y + row_h), fill=_ZEBRA)
        cx = x
        for c, ((_, width, align), value, ink) in enumerate(zip(columns, cells, inks, strict=True)):
            _cell(canvas, cx, y + row_h / 2, width, value, align, size, ink, bold=c == 0)
            cx += width
        y += row_h
    canvas.hline(y, x, x + total_w, fill=_RULE)
    return y


def _cell(
    canvas: _Canvas, x: float, y_mid: float, width: int, text: str, align: str, size: int, ink: RGB, bold: bool = False
) -> None:
    pad = 8
    text = canvas.fit(text, size, width - 2 * pad, bold)
    if align == "r":
        canvas.text((x + width - pad, y_mid), text, size, ink, bold, anchor="rm")
    elif align == "c":
        canvas.text((x + width / 2, y_mid), text, size, ink, bold, anchor="mm")
    else:
        canvas.text((x + pad, y_mid), text, size, ink, bold, anchor="lm")


def _draw_summary(
    canvas: _Canvas,
    ctx: _Context,
    overview: tuple[Image.Image, ViewPlane, float],
    keyed: Sequence[Finding],
    rejected: Sequence[Finding],
    y: int,
    page_of: Mapping[int, int],
) -> tuple[int, tuple[int, int, int, int]]:
    """Overview (left) and the findings tables (right); returns the y below them and the overview box."""
    top = y + 6
    image, plane, scale = overview
    w, h = image.size
    ox, oy = _MARGIN, top + 34
    canvas.text((ox, top), "Overview", 22, _ACCENT, bold=True)
    canvas.ensure(oy + h + 80)
    canvas.image.paste(image.convert("RGB"), (ox, oy))
    _draw_markers(canvas, ctx, keyed, plane, scale, (ox, oy), (w, h))
    _edge_letters(canvas, plane, (ox, oy, ox + w, oy + h), size=18)
    cap_y = oy + h + 10
    for n, line in enumerate(
        (
            "Coronal average-intensity projection of the whole scan (like a scout);",
            "numbered rings: reported findings, projected from front to back.",
        )
    ):
        canvas.text((ox, cap_y + n * 22), line, 15, _MUTED)
    left_bottom = cap_y + 2 * 22 + 6
    overview_box = (ox, oy, ox + w, oy + h)

    tx = _MARGIN + _OVERVIEW_BOX[0] + 40
    table_w = PAGE_WIDTH - _MARGIN - tx
    columns = list(_TABLE_COLUMNS)
    if page_of:
        columns.append(_PAGE_COLUMN)
    spare = (table_w - sum(w for _, w, _ in columns)) // (len(columns) - 1)
    columns = [columns[0]] + [(t, w + spare, a) for t, w, a in columns[1:]]  # share what is left
    ty = top
    n_acc = sum(1 for f in keyed if review_of(ctx.reviews, f.id) == ACCEPTED)
    canvas.text((tx, ty), "Findings", 22, _ACCENT, bold=True)
    ty += 34
    lines = [SELECTION_RULE.format(threshold=format_score(ctx.threshold))]
    if keyed or rejected:
        counts = f"{len(keyed)} reported ({n_acc} accepted, {len(keyed) - n_acc} unreviewed), {len(rejected)} rejected"
        if ctx.n_candidates is not None:
            counts += f"; {ctx.n_candidates} candidates scored"
        lines.insert(0, counts + ".")
    ty = _paragraph(canvas, tx, ty, lines, table_w, 17, _INK) + 8
    if ctx.caveats:
        ty = _paragraph(canvas, tx, ty, [f"Caution: {c}" for c in ctx.caveats], table_w, 17, _WARN_INK, bold=True) + 8
    if keyed:
        with_pages = len(columns) > len(_TABLE_COLUMNS)
        rows = []
        for f in keyed:
            review = review_of(ctx.reviews, f.id)
            cells = _table_cells(f, review, page_of.get(f.id) if with_pages else None)
            rows.append((cells, [_REVIEW_INK[review] if c == _REVIEW_COLUMN else _INK for c in range(len(cells))]))
        ty = _draw_table(canvas, tx, ty, columns, rows) + 14
    else:
        canvas.rect((tx, ty, tx + table_w, ty + 64), fill=_ZEBRA, outline=_RULE)
        msg = f"No findings with nodule score ≥ {format_score(ctx.threshold)}"
        msg += " besides rejected ones." if rejected else "."
        canvas.text((tx + 20, ty + 32), msg, 20, _INK, bold=True, anchor="lm")
        ty += 64 + 14
    if rejected:
        ty = _paragraph(canvas, tx, ty + 6, ["Rejected by the reader (no key images)"], table_w, 18, _MUTED, bold=True)
        rej_cols = [
            ("#", 44, "r"),
            ("Location", 170, "l"),
            ("Diameter|(mm)", 110, "r"),
            ("Type", 150, "l"),
            ("Nodule|score", 110, "r"),
            ("Review", 130, "l"),
        ]
        rej_rows = [
            ([str(f.id), f.location, f"{f.diameter_mm:.1f}", f.type, format_score(f.score), REJECTED], [_MUTED] * 6)
            for f in rejected
        ]
        ty = _draw_table(canvas, tx, ty + 2, rej_cols, rej_rows, size=16) + 14
    ty = _draw_comparison(canvas, ctx, keyed, tx, ty, table_w)
    ty = _draw_impression(canvas, ctx, keyed, tx, ty, table_w)
    notes = [
        "Diameter: mean of long and short axis (mm) on the axial slice with the largest cross-section; "
        "* = the model's estimate (not segmented).",
        "Lung-RADS hint: v2022 baseline category from size and type only (no growth, no other features). "
        "Not a category assignment.",
        "Box and ring colour: malignancy score, green (0) - yellow (0.5) - red (1). Scores are not probabilities "
        "of disease for this patient.",
    ]
    if ctx.model.malignancy_meaning:
        notes.append(f"Malignancy score: the model's estimate; its training label: {ctx.model.malignancy_meaning}.")
    if ctx.comparison is not None:
        notes.append(
            "Change per Lung-RADS v2022: growing = mean diameter up by more than 1.5 mm; VDT = volume doubling "
            "time from the segmented volumes and the study dates (negative: halving time)."
        )
    ty = _paragraph(canvas, tx, ty, notes, table_w, 15, _MUTED)
    return max(left_bottom, ty) + 10, overview_box


def _vdt_text(days: float | None) -> str:
    return "-" if days is None else f"{days:,.0f}"


def _draw_comparison(canvas: _Canvas, ctx: _Context, keyed: Sequence[Finding], x: int, y: int, width: int) -> int:
    """The comparison table: each reported finding's prior size, change and VDT; resolved prior findings."""
    cmp = ctx.comparison
    if cmp is None:
        return y
    reg = cmp.registration
    quality = ""
    if reg.surface_after_mm is not None:
        quality = f" Lungs within {reg.surface_after_mm:.1f} mm after registration ({reg.method})."
    elif cmp.source != "images":
        quality = " Matched without registration (no prior images)."
    y = _paragraph(canvas, x, y + 4, [f"Comparison. {cmp.comparison_line()}{quality}"], width, 18, _ACCENT, bold=True)
    columns = [
        ("#", 44, "r"),
        ("Change", 130, "l"),
        ("Prior|#", 70, "r"),
        ("Prior|diam. (mm)", 120, "r"),
        ("Now|diam. (mm)", 120, "r"),
        ("Prior vol.|(mm³)", 120, "r"),
        ("VDT|(days)", 100, "r"),
        ("Lung-RADS|v2022", 120, "c"),
    ]
    spare = (width - sum(w for _, w, _ in columns)) // (len(columns) - 1)
    columns = [columns[0]] + [(t, w + spare, a) for t, w, a in columns[1:]]
    rows: list[tuple[Sequence[str], Sequence[RGB]]] = []
    for f in keyed:
        change = cmp.changes.get(f.id)
        prior = change.prior if change is not None else None
        suggestion = suggestion_for(f, cmp)
        word = change.change if change is not None else "-"
        if change is not None and change.prior_below_threshold:
            word += " (prior < thr.)"
        cells = [
            str(f.id),
            word,
            str(prior.id) if prior is not None else "-",
            f"{prior.diameter_mm:.1f}" if prior is not None else "-",
            f"{f.diameter_mm:.1f}",
            _volume_text(prior.volume_mm3) if prior is not None else "-",
            _vdt_text(change.vdt_days if change is not None else None),
            suggestion.category if suggestion is not None else "-",
        ]
        ink = _WARN_INK if word.startswith(("growing", "new")) else _INK
        rows.append((cells, [ink if c == 1 else _INK for c in range(len(cells))]))
    for p in cmp.resolved:
        rows.append(
            (
                ["-", "resolved", str(p.id), f"{p.diameter_mm:.1f}", "-", _volume_text(p.volume_mm3), "-", "-"],
                [_MUTED] * 8,
            )
        )
    if rows:
        y = _draw_table(canvas, x, y + 2, columns, rows, size=16) + 14
    return y


def _draw_impression(canvas: _Canvas, ctx: _Context, keyed: Sequence[Finding], x: int, y: int, width: int) -> int:
    """The impression: suggested Lung-RADS category, its driving nodule, management, comparison line."""
    lines = build_impression(keyed, ctx.comparison).lines()
    canvas.text((x + 14, y + 10), "Impression (suggested; the reader may override)", 19, _ACCENT, bold=True)
    end = _paragraph(canvas, x + 14, y + 40, lines, width - 28, 17, _INK)
    canvas.rect((x, y, x + width, end + 6), outline=_ACCENT, width=2)  # a frame drawn after: text stays
    return end + 20


def _paragraph(
    canvas: _Canvas, x: int, y: int, lines: Sequence[str], width: int, size: int, ink: RGB, bold: bool = False
) -> int:
    """Word-wrapped lines; returns the y below them."""
    step = round(size * 1.4)
    for line in lines:
        words = line.split(" ")
        current = ""
        for word in words:
            trial = f"{current} {word}".strip()
            if current and canvas.width_of(trial, size, bold) > width:
                canvas.text((x, y), current, size, ink, bold)
                y += step
                current = word
            else:
                current = trial
        if current:
            canvas.text((x, y), current, size, ink, bold)
            y += step
    return y


def _draw_markers(
    canvas: _Canvas,
    ctx: _Context,
    keyed: Sequence[Finding],
    plane: ViewPlane,
    scale: float,
    origin: tuple[int, int],
    size: tuple[int, int],
) -> None:
    """Numbered rings at the findings' projected positions; labels placed to avoid each other."""
    placed: list[Box] = []
    ox, oy = origin
    draw = canvas.draw
    for f in sorted(keyed, key=lambda f: f.id):
        u, v, _ = plane.index_to_display(ctx.volume.geometry.mm_to_index(f.center_xyz_mm))
        cx, cy = ox + float(u) * scale, oy + float(v) * scale
        r = max(f.diameter_mm / 2.0 * scale + 6.0, 11.0)
        colour = malignancy_rgb(f.malignancy)
        draw.ellipse((cx - r - 2, cy - r - 2, cx + r + 2, cy + r + 2), outline=_BLACK, width=6)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=colour, width=3)
        label = str(f.id)
        tw = canvas.width_of(label, 17, bold=True) + 12
        th = 24.0
        options = [
            (cx + r * 0.75, cy - r * 0.75 - th),
            (cx - r * 0.75 - tw, cy - r * 0.75 - th),
            (cx + r * 0.75, cy + r * 0.75),
            (cx - r * 0.75 - tw, cy + r * 0.75),
            (cx + r + 4, cy - th / 2),
            (cx - r - 4 - tw, cy - th / 2),
        ]

        bounds = (float(ox), float(oy), float(ox + size[0]), float(oy + size[1]))
        x0, y0 = min(options, key=lambda pos: _label_cost((pos[0], pos[1], pos[0] + tw, pos[1] + th), placed, bounds))
        placed.append((x0, y0, x0 + tw, y0 + th))
        draw.rounded_rectangle((x0, y0, x0 + tw, y0 + th), radius=5, fill=_ACCENT, outline=colour, width=2)
        canvas.text((x0 + tw / 2, y0 + th / 2), label, 17, _WHITE, bold=True, anchor="mm")


Box = tuple[float, float, float, float]


def _label_cost(box: Box, placed: Sequence[Box], bounds: Box) -> float:
    """Area a label box overlaps placed labels, plus a large penalty when it leaves ``bounds``."""
    inside = bounds[0] <= box[0] and bounds[1] <= box[1] and box[2] <= bounds[2] and box[3] <= bounds[3]
    overlap = sum(
        max(0.0, min(box[2], b[2]) - max(box[0], b[0])) * max(0.0, min(box[3], b[3]) - max(box[1], b[1]))
        for b in placed
    )
    return overlap + (0.0 if inside else 1e6)


def _edge_letters(canvas: _Canvas, plane: ViewPlane, box: tuple[int, int, int, int], size: int = 16) -> None:
    """Orientation letters at the image edges, white with a dark outline (readable on any grey)."""
    x0, y0, x1, y1 = box
    letters = plane.edge_labels()
    pad = 6
    spots = {
        "left": ((x0 + pad, (y0 + y1) / 2), "lm"),
        "right": ((x1 - pad, (y0 + y1) / 2), "rm"),
        "top": (((x0 + x1) / 2, y0 + pad), "mt"),
        "bottom": (((x0 + x1) / 2, y1 - pad), "mb"),
    }
    for edge, (xy, anchor) in spots.items():
        canvas.text(xy, letters[edge], size, _WHITE, bold=True, anchor=anchor, stroke=_BLACK)


_VIEW_TITLES = {ViewKind.AXIAL: "Axial", ViewKind.CORONAL: "Coronal", ViewKind.SAGITTAL: "Sagittal"}
_LPS_AXIS = {ViewKind.AXIAL: 2, ViewKind.CORONAL: 1, ViewKind.SAGITTAL: 0}


def _draw_key_row(canvas: _Canvas, ctx: _Context, f: Finding, y: int) -> tuple[int, list[CropRect]]:
    """One finding: details on the left, then axial, coronal, sagittal and magnified crops."""
    volume = ctx.volume
    review = review_of(ctx.reviews, f.id)
    colour = malignancy_rgb(f.malignancy)
    canvas.ensure(y + _ROW_H + 20)
    canvas.hline(y, width=1)
    top = y + 14
    # details
    x = _MARGIN
    canvas.draw.rounded_rectangle((x, top, x + 58, top + 44), radius=7, fill=_ACCENT, outline=colour, width=3)
    canvas.text((x + 29, top + 22), str(f.id), 24, _WHITE, bold=True, anchor="mm")
    place = f"{f.side.capitalize()} {f.zone} zone"
    canvas.text((x + 72, top + 1), canvas.fit(place, 21, 260, bold=True), 21, _INK, bold=True)
    canvas.text((x + 72, top + 28), canvas.fit(f"{f.type} nodule", 17, 260), 17, _MUTED)
    estimate = "" if f.measured else " (model estimate)"
    details = [
        ("Diameter", f"{f.diameter_mm:.1f} mm{estimate}"),
        ("Axes", f"{f.long_axis_mm:.1f} × {f.short_axis_mm:.1f} mm"),
        ("Volume", f"{_volume_text(f.volume_mm3)} mm³"),
        ("Nodule score", format_score(f.score)),
        ("Malignancy", f"{f.malignancy:.2f}"),
        ("Lung-RADS hint", f.lung_rads or "-"),
        ("Centre LPS mm", ", ".join(f"{v:.1f}" for v in f.center_xyz_mm)),
    ]
    if ctx.comparison is not None:
        change = ctx.comparison.changes.get(f.id)
        if change is not None and change.prior is not None:
            details.append(("Prior", f"{change.prior.diameter_mm:.1f} mm, {change.change}"))
            details.append(("VDT", f"{_vdt_text(change.vdt_days)} days" if change.vdt_days is not None else "-"))
        elif change is not None:
            details.append(("Prior", change.change))
    dy = top + 62
    for label, value in details:
        canvas.text((x, dy), label, 16, _MUTED)
        canvas.text((x + 138, dy), canvas.fit(value, 17, 190, bold=True), 17, _INK, bold=True)
        dy += 27
    canvas.text((x, dy + 4), "Review", 16, _MUTED)
    canvas.text((x + 138, dy + 4), review, 17, _REVIEW_INK[review], bold=True)
    # crops
    crops: list[CropRect] = []
    fov = max(CROP_FOV_MM, 3.0 * f.diameter_mm)
    zoom_fov = max(ZOOM_FOV_MM, 1.6 * f.diameter_mm)
    gap = (_CONTENT_W - 340 - 4 * CROP_PX) // 3
    cx0 = PAGE_WIDTH - _MARGIN - 4 * CROP_PX - 3 * gap
    views: list[tuple[ViewKind, float, str]] = [
        (ViewKind.AXIAL, fov, ""),
        (ViewKind.CORONAL, fov, ""),
        (ViewKind.SAGITTAL, fov, ""),
        (ViewKind.AXIAL, zoom_fov, "zoom"),
    ]
    for n, (kind, fov_mm, tag) in enumerate(views):
        plane = ViewPlane.for_geometry(volume.geometry, kind)
        hu, k, (u_c, v_c) = _crop(volume, plane, f.center_xyz_mm, fov_mm, CROP_PX, order=3 if tag else 1)
        px0, py0 = cx0 + n * (CROP_PX + gap), top + 30
        pos = volume.geometry.index_to_mm(_slice_centre(plane, volume, f, k))[_LPS_AXIS[kind]]
        axis = "xyz"[_LPS_AXIS[kind]]
        if tag:
            title = f"Magnified ×{fov / fov_mm:.1f}  ·  {fov_mm:.0f} mm field"
        else:
            title = f"{_VIEW_TITLES[kind]}  {k + 1}/{plane.n_slices}  ·  {axis} = {pos:.1f} mm"
        canvas.text((px0, top + 2), canvas.fit(title, 16, CROP_PX, bold=True), 16, _INK, bold=True)
        canvas.image.paste(Image.fromarray(_window_u8(hu)).convert("RGB"), (px0, py0))
        step = fov_mm / CROP_PX
        rect = box_on_slice(plane, volume.geometry, f.bbox_min_xyz_mm, f.bbox_max_xyz_mm, k)
        if rect is None:  # the measured box misses the centre's slice: a box of the diameter instead
            r = f.diameter_mm / 2.0
            rect = (u_c - r, v_c - r, u_c + r, v_c + r)
        u0, v0, u1, v1 = rect
        bx0 = px0 + (u0 - u_c) / step + CROP_PX / 2 - 3
        by0 = py0 + (v0 - v_c) / step + CROP_PX / 2 - 3
        bx1 = px0 + (u1 - u_c) / step + CROP_PX / 2 + 3
        by1 = py0 + (v1 - v_c) / step + CROP_PX / 2 + 3
        clip = (px0, py0, px0 + CROP_PX, py0 + CROP_PX)
        _draw_box(canvas, (bx0, by0, bx1, by1), clip, colour, brackets=bool(tag))
        _edge_letters(canvas, plane, (px0, py0, px0 + CROP_PX, py0 + CROP_PX))
        _scale_bar(canvas, px0, py0, step, 5.0 if fov_mm <= 30 else 10.0)
        canvas.rect((px0 - 1, py0 - 1, px0 + CROP_PX, py0 + CROP_PX), outline=_RULE)
        crops.append(
            CropRect(
                f.id,
                tag or kind.value,
                (px0, py0, px0 + CROP_PX, py0 + CROP_PX),
                (px0 + CROP_PX / 2, py0 + CROP_PX / 2),
                step,
                k,
            )
        )
    return top + 30 + CROP_PX + 22, crops


def _slice_centre(plane: ViewPlane, volume: Volume, f: Finding, k: int) -> NDArray[np.float64]:
    index = volume.geometry.mm_to_index(f.center_xyz_mm)
    index[plane.slice_axis] = k
    return index


def _draw_box(
    canvas: _Canvas,
    box: tuple[float, float, float, float],
    clip: tuple[int, int, int, int],
    colour: RGB,
    brackets: bool,
) -> None:
    x0, y0, x1, y1 = (
        max(box[0], clip[0] + 1),
        max(box[1], clip[1] + 1),
        min(box[2], clip[2] - 2),
        min(box[3], clip[3] - 2),
    )
    if x1 <= x0 or y1 <= y0:
        return
    draw = canvas.draw
    if not brackets:
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=2)
        return
    arm = max(8.0, min(x1 - x0, y1 - y0) / 4)
    for cx, cy, sx, sy in ((x0, y0, 1, 1), (x1, y0, -1, 1), (x0, y1, 1, -1), (x1, y1, -1, -1)):
        draw.line((cx, cy, cx + sx * arm, cy), fill=colour, width=3)
        draw.line((cx, cy, cx, cy + sy * arm), fill=colour, width=3)


def _scale_bar(canvas: _Canvas, x0: int, y0: int, mm_per_px: float, length_mm: float) -> None:
    length = length_mm / mm_per_px
    x, y = x0 + 12, y0 + CROP_PX - 12
    canvas.draw.line((x - 1, y, x + length + 1, y), fill=_BLACK, width=6)
    canvas.draw.line((x, y, x + length, y), fill=_WHITE, width=3)
    canvas.text((x + length / 2, y - 6), f"{length_mm:g} mm", 15, _WHITE, bold=True, anchor="mb", stroke=_BLACK)


# ---- files --------------------------------------------------------------------------------------
def png_text(model: ModelInfo, created: datetime, number: int, n_pages: int) -> dict[str, str]:
    """The PNG text chunks of a page: software, model SHA-256, creation time, disclaimer. No patient data."""
    return {
        "Title": f"NodeView lung nodule report, page {number} of {n_pages}",
        "Software": f"NodeView {__version__}",
        "nodeview-version": __version__,
        "model": model.label,
        "model-sha256": model.sha256,
        "Creation Time": created.isoformat(timespec="seconds"),
        "Disclaimer": DISCLAIMER,
    }


def encode_png(page: ReportPage, model: ModelInfo, created: datetime) -> bytes:
    info = PngInfo()
    for key, value in png_text(model, created, page.number, page.n_pages).items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    page.image.save(buffer, format="PNG", pnginfo=info, compress_level=6)
    return buffer.getvalue()


#: Report files without their JSON sidecar older than this are the remains of an interrupted run.
INCOMPLETE_REPORT_AGE_S = 60.0


def check_report_target(out_dir: str | os.PathLike[str], stem: str, overwrite: bool = False) -> None:
    """Before any work: raise unless a report ``stem`` can be written into ``out_dir``.

    Raises :class:`ReportExistsError` when a report with this stem exists and ``overwrite`` is
    False, :class:`~.outputs.OutputPathError` when the folder is not writable. Pages left without
    their JSON sidecar by a run that was killed (the sidecar is claimed last) for more than
    :data:`INCOMPLETE_REPORT_AGE_S` seconds are removed, so they do not block a rerun.
    """
    folder = Path(out_dir)
    check_writable_folder(folder, "report")
    existing = existing_report_files(folder, stem)
    sidecar = folder / f"{stem}.json"
    if existing and sidecar not in existing:
        now = time.time()
        if all(now - p.stat().st_mtime > INCOMPLETE_REPORT_AGE_S for p in existing if p.exists()):
            for p in existing:
                with contextlib.suppress(OSError):
                    p.unlink()
            existing = []
    if existing and not overwrite:
        names = ", ".join(p.name for p in existing[:3]) + (" …" if len(existing) > 3 else "")
        raise ReportExistsError(f"a report already exists in {folder}: {names} (choose overwrite to replace it)")


def report_json(
    result: DetectionResult,
    volume: Volume,
    reviews: Mapping[int, str],
    threshold: float,
    anonymize: bool,
    timings: Mapping[str, float],
    created: datetime,
    page_names: Sequence[str],
    comparison: Comparison | None = None,
) -> dict[str, Any]:
    """The ``nodeview.findings/2`` sidecar (:mod:`.followup.findings_doc`), with each finding's
    ``review`` and a ``report`` block; the impression leaves out findings the reader rejected."""
    rejected = [fid for fid, status in reviews.items() if status == REJECTED]
    doc = findings_document(result, volume, threshold, anonymize, dict(timings), comparison, rejected)
    for item in doc["findings"]:
        item["review"] = review_of(reviews, int(item["id"]))
    doc["report"] = {
        "created": created.isoformat(timespec="seconds"),
        "software": f"NodeView {__version__}",
        "pages": list(page_names),
        "anonymized": anonymize,
        "selection": SELECTION_RULE.format(threshold=format_score(threshold)),
    }
    return doc


def write_report(
    out_dir: str | os.PathLike[str],
    volume: Volume,
    result: DetectionResult,
    reviews: Mapping[int, str],
    threshold: float,
    *,
    stem: str | None = None,
    anonymize: bool = False,
    overwrite: bool = False,
    timings: Mapping[str, float] | None = None,
    created: datetime | None = None,
    progress: ProgressFn = no_progress,
    should_stop: StopFn = never_stop,
    comparison: Comparison | None = None,
) -> list[Path]:
    """Render and write ``STEM.png`` (``STEM-p2.png``, ...) and ``STEM.json`` into ``out_dir``.

    Args:
        out_dir: folder (created if missing).
        volume, result: the study and its detection.
        reviews: finding id -> review status (missing ids are unreviewed).
        threshold: operating threshold (nodule score).
        stem: file name without extension; :func:`default_stem` when None.
        anonymize: no patient name, ID, birth date or accession number in pixels, text or JSON.
        overwrite: replace an existing report (and remove its extra pages); else
            :class:`ReportExistsError` and nothing is written.
        timings: seconds per stage, for the JSON.
        created: creation time (default: now, local time zone).
        comparison: the comparison with a prior study, for the impression and the comparison table.

    Returns:
        The paths written: the pages in order, then the JSON.
    """
    created = created or datetime.now().astimezone()
    stem = stem or default_stem(volume)
    if Path(stem).name != stem or stem in ("", ".", ".."):
        raise InputError(f"report name {stem!r} must be a plain file name")
    if anonymize and contains_patient_data(stem, volume):
        raise InputError("the report name contains patient data; choose another name for an anonymized report")
    folder = Path(out_dir)
    check_report_target(folder, stem, overwrite)

    def scaled(done: int, total: int) -> None:
        progress(90 * done // max(total, 1), 100)

    pages = render_report(
        volume,
        result.findings,
        reviews,
        result.model,
        threshold,
        anonymize=anonymize,
        created=created,
        n_candidates=result.n_candidates,
        caveats=result.caveats,
        progress=scaled,
        should_stop=should_stop,
        comparison=comparison,
    )
    targets = report_paths(folder, stem, len(pages))
    stale = [p for p in existing_report_files(folder, stem) if p not in targets]
    check_cancel(should_stop)
    doc = report_json(
        result,
        volume,
        reviews,
        threshold,
        anonymize,
        timings or {},
        created,
        [p.name for p in targets[:-1]],
        comparison,
    )
    items = [(path, encode_png(page, result.model, created)) for page, path in zip(pages, targets, strict=False)]
    progress(95, 100)
    items.append((targets[-1], (json.dumps(doc, indent=2, allow_nan=False) + "\n").encode("utf-8")))
    try:
        # claimed as one set: all files complete under temporary names, then every name claimed
        # (never replacing one unless overwrite); a failure removes what this call claimed
        write_file_set(items, overwrite=overwrite, what="report")
        for path in stale:
            path.unlink()
    except OutputExistsError as exc:
        raise ReportExistsError(f"a report already exists in {folder}: {exc} (choose overwrite to replace it)") from exc
    except (OutputWriteError, OSError) as exc:
        raise ReportWriteError(f"cannot write the report to {folder}: {getattr(exc, 'strerror', None) or exc}") from exc
    progress(100, 100)
    return targets


__all__ = [
    "ACCEPTED",
    "DISCLAIMER",
    "REJECTED",
    "REVIEW_STATES",
    "UNREVIEWED",
    "CropRect",
    "FontMissingError",
    "ReportExistsError",
    "ReportPage",
    "ReportWriteError",
    "check_report_target",
    "contains_patient_data",
    "default_stem",
    "existing_report_files",
    "load_font",
    "render_report",
    "report_json",
    "report_paths",
    "select_findings",
    "write_report",
]
