"""Regression tests for issue 22 (data loss, hangs, privacy, wrong results), in-process and fast.
The subprocess fuzz suite in ``tests/fuzz`` runs the same rules over hundreds of generated inputs."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from nodeview.cli import main
from nodeview.core import outputs as O
from nodeview.core.errors import NodeViewError, UnreadableFileError
from nodeview.core.io.dicom import collect_input_files, discover, load_series
from nodeview.core.io.study import open_study

from . import synthetic_series as S
from .fuzz.corpus import put_raw


@pytest.fixture()
def series(tmp_path: Path) -> Path:
    folder = tmp_path / "ct"
    S.plain(folder, shape=(20, 64, 64))
    for p in sorted(folder.iterdir()):
        ds = pydicom.dcmread(p)
        ds.PatientName, ds.PatientID = "ROBUSTA^GRETA", "RB-31337"
        ds.SeriesDescription = "thorax ROBUSTA RB-31337"
        ds.save_as(p, enforce_file_format=False)
    return folder


def _edit(folder: Path, which: str, fn) -> None:  # type: ignore[no-untyped-def]
    files = sorted(folder.iterdir())
    for p in [files[len(files) // 2]] if which == "one" else files[len(files) // 2 :] if which == "half" else files:
        ds = pydicom.dcmread(p)
        fn(ds)
        ds.save_as(p, enforce_file_format=False)


# ---- outputs ----------------------------------------------------------------------------------
def test_output_path_refusals(series: Path, tmp_path: Path) -> None:
    inputs = O.input_identities([series])
    an_input = sorted(series.iterdir())[0]
    with pytest.raises(O.OutputPathError, match="input files"):
        O.check_output_path(an_input, inputs, overwrite=True)
    existing = tmp_path / "x.json"
    existing.write_text("keep")
    with pytest.raises(O.OutputExistsError, match="--overwrite"):
        O.check_output_path(existing, inputs)
    assert O.check_output_path(existing, inputs, overwrite=True) == existing
    for bad in (Path("/dev/null"), series):
        with pytest.raises(O.OutputPathError, match=r"not a regular file|a folder"):
            O.check_output_path(bad, inputs, overwrite=True)
    with pytest.raises(O.OutputPathError):
        O.check_output_path(existing / "below-a-file.json", inputs)


def test_write_file_set_is_all_or_nothing(tmp_path: Path) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.json"
    b.write_text("someone else's")
    with pytest.raises(O.OutputExistsError):
        O.write_file_set([(a, b"1"), (b, b"2")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.json"] and b.read_text() == "someone else's"
    assert O.write_file_set([(a, b"1"), (b, b"2")], overwrite=True) == [a, b]
    assert a.read_bytes() == b"1" and b.read_bytes() == b"2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.json"]


def test_json_onto_input_or_existing_is_refused_before_detection(series: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    target = sorted(series.iterdir())[3]
    before = target.read_bytes()
    # the model does not even need to be valid: the output is checked first
    model = tmp_path / "m.onnx"
    model.write_bytes(b"not checked yet")
    assert main(["detect", str(series), "--model", str(model), "--json", str(target), "--overwrite"]) == 2
    err = capsys.readouterr().err.strip()
    assert "input files" in err and len(err.splitlines()) == 1 and target.read_bytes() == before
    old = tmp_path / "old.json"
    old.write_text("precious")
    assert main(["detect", str(series), "--model", str(model), "--json", str(old)]) == 2
    assert "already exists" in capsys.readouterr().err and old.read_text() == "precious"


# ---- hangs: special files ---------------------------------------------------------------------
def test_fifo_in_folder_is_skipped_and_counted_fifo_given_directly_is_named(series: Path, tmp_path: Path) -> None:
    os.mkfifo(series / "x.dcm")
    os.symlink(series / "loop-b.dcm", series / "loop-a.dcm")
    os.symlink(series / "loop-a.dcm", series / "loop-b.dcm")
    found = discover(series)  # would block forever on opening the FIFO
    reasons = found.to_dict()["skipped_reasons"]
    assert reasons.get("FIFO (named pipe), not a file") == 1 and reasons.get("symbolic link loop") == 2
    assert found.default_series().n_images == 20
    fifo = tmp_path / "pipe.dcm"
    os.mkfifo(fifo)
    with pytest.raises(UnreadableFileError, match="FIFO"):
        collect_input_files(fifo)
    with pytest.raises(UnreadableFileError, match="device file"):
        collect_input_files("/dev/null")


def test_absurd_number_of_frames_is_refused_at_once(series: Path) -> None:
    _edit(series, "all", lambda ds: put_raw(ds, "NumberOfFrames", "IS", b"2147483647"))
    with pytest.raises(NodeViewError, match="NumberOfFrames"):
        discover(series)


def test_voxel_budget_is_checked_from_headers(series: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("NODEVIEW_MAX_VOXELS", str(19 * 64 * 64))
    chosen = discover(series).default_series()
    assert chosen.plan.error and "NODEVIEW_MAX_VOXELS" in chosen.plan.error
    with pytest.raises(NodeViewError, match="limit"):
        load_series(chosen)


# ---- wrong results ----------------------------------------------------------------------------
@pytest.mark.parametrize("value", [None, b"nan\\nan\\nan", b"inf\\0\\0", b"abc\\def\\ghi", b"1e30\\1e30\\1e30"])
def test_one_bad_position_is_left_out_not_a_fake_tilt(series: Path, value: bytes | None) -> None:
    clean = open_study(series)
    _edit(series, "one", lambda ds: put_raw(ds, "ImagePositionPatient", "DS", value))
    volume = open_study(series)
    assert volume.shape_zyx == clean.shape_zyx  # the gap of one slice is interpolated, nothing invented
    text = " ".join(volume.warnings)
    assert "tilt" not in text.lower() and "ImagePositionPatient" in text


def test_frames_of_reference_are_split_and_large_gaps_are_not_interpolated(series: Path) -> None:
    def move(ds: pydicom.Dataset) -> None:
        ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.4711"
        ipp = [float(v) for v in ds.ImagePositionPatient]
        ds.ImagePositionPatient = [ipp[0], ipp[1], ipp[2] + 251.0]

    _edit(series, "half", move)
    found = discover(series)
    assert [s.n_images for s in found.series] == [10, 10]
    assert all(s.shape_zyx[0] == 10 for s in found.series)
    assert "frames of reference" in " ".join(found.series[0].warnings)


def test_one_slice_100_m_away_is_split_off(series: Path) -> None:
    _edit(series, "one", lambda ds: setattr(ds, "ImagePositionPatient", [0, 0, 100_000 - 1]))
    found = discover(series)
    assert sorted(s.n_images for s in found.series) == [1, 19]
    assert max(s.shape_zyx[0] for s in found.series) <= 20


@pytest.mark.parametrize(
    "element, value, match",
    [
        ("RescaleSlope", b"0", "RescaleSlope 0"),
        ("RescaleSlope", b"nan", "RescaleSlope is not a number"),
        ("RescaleSlope", b"1e30", "RescaleSlope 1e\\+30"),
        ("RescaleIntercept", b"nan", "RescaleIntercept is not a number"),
        ("PixelSpacing", b"0\\0", "PixelSpacing 0 x 0"),
        ("PixelSpacing", b"-0.7\\-0.7", "PixelSpacing -0.7"),
        ("PixelSpacing", b"1e-30\\1e-30", "PixelSpacing 1e-30"),
        ("ImageOrientationPatient", b"1\\0\\0\\0.5\\0.866\\0", "not perpendicular"),
    ],
)
def test_implausible_values_refuse_the_series_or_leave_the_image_out(series, element, value, match):  # type: ignore[no-untyped-def]
    one = series.parent / "one"
    shutil.copytree(series, one)
    _edit(series, "all", lambda ds: put_raw(ds, element, "DS", value))
    with pytest.raises(NodeViewError, match=match):
        open_study(series)
    _edit(one, "one", lambda ds: put_raw(ds, element, "DS", value))
    volume = open_study(one)
    assert volume.shape_zyx[0] == 20 and "left out" in " ".join(volume.warnings)


def test_eight_bit_header_on_sixteen_bit_data_is_refused(series: Path) -> None:
    _edit(series, "all", lambda ds: setattr(ds, "BitsAllocated", 8))
    with pytest.raises(NodeViewError, match="BitsAllocated 8"):
        open_study(series)


def test_non_unit_orientation_is_normalised_and_said(series: Path) -> None:
    _edit(series, "all", lambda ds: put_raw(ds, "ImageOrientationPatient", "DS", b"2\\0\\0\\0\\2\\0"))
    volume = open_study(series)
    assert np.allclose(volume.geometry.direction, np.eye(3)) and "normalised" in " ".join(volume.warnings)


# ---- privacy ----------------------------------------------------------------------------------
@pytest.mark.parametrize("extra", [[], ["--json"], ["--no-pixels"], ["--no-pixels", "--json"]])
def test_info_redacts_descriptions_with_patient_data(series: Path, capsys, extra) -> None:  # type: ignore[no-untyped-def]
    assert main(["info", str(series), *extra]) == 0
    out = capsys.readouterr().out
    assert "ROBUSTA" not in out.upper() and "RB-31337" not in out and "(redacted)" in out
    if "--json" in extra:
        json.loads(out)


# ---- smaller ----------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [["-v", "info"], ["info", "-v"], ["--verbose", "info"], ["info"]])
def test_verbose_before_or_after_the_subcommand(series: Path, argv: list[str], capsys) -> None:  # type: ignore[no-untyped-def]
    assert main([*argv, str(series), "--no-pixels"]) == 0
    assert "file(s)" in capsys.readouterr().out


def test_onnxruntime_telemetry_is_off() -> None:
    import nodeview

    assert nodeview is not None and os.environ.get("ORT_DISABLE_TELEMETRY") == "1"


def test_model_outputs_are_range_checked() -> None:
    from nodeview.core.detect.detector import ModelError, check_model_outputs

    good = {"nodule_prob": np.array([0.2, 1.0], np.float32), "malignancy_prob": np.array([0.0, 0.5], np.float32),
            "diameter_mm": np.array([3.0, 8.0], np.float32)}
    check_model_outputs(good, "m.onnx")
    for key, bad in (("nodule_prob", np.inf), ("malignancy_prob", -0.98), ("nodule_prob", 1.7),
                     ("nodule_prob", np.nan), ("diameter_mm", -5.0)):
        scores = {k: v.copy() for k, v in good.items()}
        scores[key][0] = bad
        with pytest.raises(ModelError, match="wrong or broken model"):
            check_model_outputs(scores, "m.onnx")


def test_loader_warnings_reach_detection_caveats(series: Path) -> None:
    from nodeview.core.detect.detector import detection_caveats

    files = sorted(series.iterdir())
    files[10].unlink()  # a missing slice: interpolated, and said
    volume = open_study(series)
    assert volume.interpolated_slices

    from types import SimpleNamespace

    caveats = detection_caveats(volume, SimpleNamespace(reranker=None, metadata={}))  # type: ignore[arg-type]
    assert any("interpolation" in c for c in caveats)
