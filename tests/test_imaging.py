# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""verl_fair.data.imaging on DICOM, NIfTI and video files written here in those formats."""

import csv
from pathlib import Path

import av
import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, JPEGLSLossless

from verl_fair.data import imaging
from verl_fair.data.imaging import ConversionError

MAMMOGRAPHY = "1.2.840.10008.5.1.4.1.1.1.2"  # Digital Mammography X-Ray Image Storage - For Presentation
COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]  # one per second of write_video's clips


def write_dicom(path: Path, pixels, photometric: str = "MONOCHROME2", bits_stored: int = 12, **tags) -> Path:
    """A valid DICOM file (explicit VR little endian) with ``pixels`` and the given tags."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = MAMMOGRAPHY
    pixels = np.asarray(pixels)
    ds.set_pixel_data(pixels.astype(np.uint8 if bits_stored <= 8 else np.uint16), photometric, bits_stored)
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_nifti(path: Path, hu: np.ndarray, affine=None) -> Path:
    """An int16 NIfTI volume stored as HU + 1024 with scl_inter -1024, so reading it must apply the scaling."""
    image = nib.Nifti1Image((np.asarray(hu) + 1024).astype(np.int16), np.eye(4) if affine is None else affine)
    image.header.set_slope_inter(1.0, -1024.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, path)
    return path


def write_video(path: Path, seconds: int = 4, fps: int = 4) -> Path:
    """An MPEG-4 video whose second s is solid COLOURS[s]."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for second in range(seconds):
            solid = np.full((32, 32, 3), COLOURS[second], np.uint8)
            for _ in range(fps):
                container.mux(stream.encode(av.VideoFrame.from_ndarray(solid, format="rgb24")))
        container.mux(stream.encode())
    return path


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


# --- DICOM -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "photometric, expected", [("MONOCHROME2", [[0, 128], [255, 0]]), ("MONOCHROME1", [[255, 127], [0, 255]])]
)
def test_dicom_window_from_tags_and_monochrome1_inverted(tmp_path, photometric, expected):
    source = write_dicom(
        tmp_path / "a.dcm", [[0, 2048], [4095, 1000]], photometric, WindowCenter=2048, WindowWidth=1024
    )
    out = imaging.dicom_to_png(source, tmp_path / "png" / "a.png")
    assert Image.open(out).mode == "L"
    assert _pixels(out).tolist() == expected


def test_dicom_voi_lut_is_preferred_to_the_window(tmp_path):
    lut = Dataset()
    lut.LUTDescriptor = [4, 0, 16]
    lut.add_new(0x00283006, "US", [0, 1000, 2000, 4000])  # LUT Data
    source = write_dicom(tmp_path / "a.dcm", [[0, 1], [2, 3]], VOILUTSequence=[lut], WindowCenter=1, WindowWidth=1)
    assert _pixels(imaging.dicom_to_png(source, tmp_path / "a.png")).tolist() == [[0, 64], [128, 255]]


def test_dicom_rescale_to_hu_then_window_as_16_bit(tmp_path):
    source = write_dicom(
        tmp_path / "ct.dcm",
        [[0, 1064], [1224, 1000]],
        bits_stored=16,
        RescaleSlope=1,
        RescaleIntercept=-1024,
        WindowCenter=40,
        WindowWidth=80,
    )
    out = imaging.dicom_to_png(source, tmp_path / "ct.png", bits=16)
    values = _pixels(out)
    assert Image.open(out).mode.startswith("I;16")
    assert values[0, 0] == 0 and values[1, 0] == 65535 and values[1, 1] == 0  # -1024, 200 and -24 HU
    assert abs(int(values[0, 1]) - 32768) < 700  # 40 HU


def test_dicom_without_window_uses_the_value_range_and_padding_is_black(tmp_path):
    plain = write_dicom(tmp_path / "a.dcm", [[100, 300], [200, 300]])
    assert _pixels(imaging.dicom_to_png(plain, tmp_path / "a.png")).tolist() == [[0, 255], [128, 255]]
    padded = write_dicom(tmp_path / "b.dcm", [[0, 100], [200, 300]], "MONOCHROME1", PixelPaddingValue=0)
    assert _pixels(imaging.dicom_to_png(padded, tmp_path / "b.png")).tolist() == [[0, 170], [85, 0]]


def test_dicom_tags_keep_the_raw_age_string(tmp_path):
    source = write_dicom(tmp_path / "a.dcm", [[0, 1]], PatientAge="006M", PatientSex="F", ViewPosition="CC")
    tags = imaging.dicom_tags(source)
    assert tags["Patient's Age"] == "006M" and tags["Patient's Sex"] == "F" and tags["View Position"] == "CC"
    assert tags["Image Laterality"] == "" and tags["SOP Instance UID"]


def _not_dicom(path):
    path.write_text("not a DICOM file")


def _no_pixels(path):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = "1.2.840.10008.5.1.4.1.1.88.11", "1.2.3", "SR"
    ds.save_as(path, enforce_file_format=True)


def _undecodable(path):
    write_dicom(path, [[0, 1]])
    ds = imaging._require("pydicom").dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.PixelData = encapsulate([b"\x00" * 10])
    ds["PixelData"].VR = "OB"
    ds.save_as(path)


@pytest.mark.parametrize(
    "make, problem",
    [
        (_not_dicom, "not a DICOM file"),
        (_no_pixels, "has no pixel data"),
        (lambda p: write_dicom(p, np.zeros((2, 2, 3)), "RGB", 8), "photometric interpretation 'RGB'"),
        (lambda p: write_dicom(p, np.zeros((2, 2, 2))), "has 2 frames"),
        (_undecodable, "cannot be decoded"),
    ],
)
def test_dicom_errors_name_the_file_and_write_nothing(tmp_path, make, problem):
    source = tmp_path / "bad.dcm"
    make(source)
    with pytest.raises(ConversionError, match=problem) as caught:
        imaging.dicom_to_png(source, tmp_path / "bad.png")
    assert str(source) in str(caught.value) and not (tmp_path / "bad.png").exists()


# --- NIfTI -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("affine, right_anterior", [(np.eye(4), (3, 2)), (np.diag([-1.0, 1, 1, 1]), (0, 2))])
def test_nifti_brain_window_slices_and_radiological_view(tmp_path, affine, right_anterior):
    hu = np.empty((4, 3, 3))
    hu[..., 0], hu[..., 1], hu[..., 2] = 40, -100, 200
    hu[(*right_anterior, 0)] = 500  # the patient's right and front: top left once shown
    written = imaging.nifti_to_slices(write_nifti(tmp_path / "049.nii", hu, affine), tmp_path / "049", suffix=".png")
    assert [p.name for p in written] == ["1.png", "2.png", "3.png"]
    first = _pixels(written[0])
    assert first.shape == (3, 4) and first[0, 0] == 255
    assert set(first.ravel()[1:].tolist()) == {128}  # 40 HU is mid-grey
    assert set(_pixels(written[1]).ravel().tolist()) == {0} and set(_pixels(written[2]).ravel().tolist()) == {255}


def test_apply_window_bounds():
    assert imaging.apply_window(np.array([-50, 0, 40, 80, 1000]), 40, 80).tolist() == [0, 0, 0.5, 1, 1]
    with pytest.raises(ValueError, match="width"):
        imaging.apply_window(np.zeros(1), 40, 0)


def _coronal(path):
    write_nifti(path, np.zeros((2, 2, 2)), np.array([[1.0, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]]))


@pytest.mark.parametrize(
    "make, problem",
    [
        (lambda p: write_nifti(p, np.zeros((4, 3))), "2-D image"),
        (lambda p: write_nifti(p, np.zeros((2, 2, 2, 2))), "4-D image"),
        (lambda p: p.write_bytes(b"not a volume" * 40), "not a NIfTI volume"),
        (_coronal, "not axial"),
    ],
)
def test_nifti_errors_name_the_file(tmp_path, make, problem):
    source = tmp_path / "bad.nii"
    make(source)
    with pytest.raises(ConversionError, match=problem) as caught:
        imaging.nifti_to_slices(source, tmp_path / "out")
    assert str(source) in str(caught.value) and not (tmp_path / "out").exists()


# --- video -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "when, colour",
    [({"at_seconds": 0}, 0), ({"at_seconds": 1}, 1), ({"at_seconds": 2.6}, 2), ({"frame": 13}, 3), ({"frame": 4}, 1)],
)
def test_video_frame_at_a_time_or_index(tmp_path, when, colour):
    out = imaging.video_frame(write_video(tmp_path / "v.mp4"), tmp_path / "v.png", **when)
    pixels = _pixels(out)
    assert pixels.shape == (32, 32, 3)
    assert np.abs(pixels[16, 16].astype(int) - COLOURS[colour]).max() < 12


def test_video_errors(tmp_path):
    video = write_video(tmp_path / "v.mp4")
    for when, problem in (
        ({"at_seconds": 10}, "ends before 10 s"),
        ({"frame": 16}, r"ends before frame 16 \(16 frames"),
    ):
        with pytest.raises(ConversionError, match=problem):
            imaging.video_frame(video, tmp_path / "v.png", **when)
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    with pytest.raises(ConversionError, match="cannot be read as a video"):
        imaging.video_frame(broken, tmp_path / "v.png", frame=0)
    broken.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    with pytest.raises(ConversionError, match="no video stream"):
        imaging.video_frame(broken, tmp_path / "v.png", frame=0)
    with pytest.raises(ValueError, match="exactly one"):
        imaging.video_frame(video, tmp_path / "v.png", at_seconds=1, frame=1)
    assert not (tmp_path / "v.png").exists()


# --- folders and command line ------------------------------------------------------------------------------------


def test_folder_counts_failures_keeps_going_and_resumes(tmp_path, capsys):
    src, dst = tmp_path / "images", tmp_path / "png"
    write_dicom(src / "s1" / "i1.dicom", [[0, 4095]], PatientAge="065Y", PatientSex="F")
    (src / "s1" / "i2.dicom").write_text("truncated")
    report = imaging.convert_folder("dicom", src, dst, tags=tmp_path / "tags.csv")
    assert (report.converted, report.existing, len(report.failed)) == (1, 0, 1)
    assert "i2.dicom: not a DICOM file" in report.failed[0] and (dst / "s1" / "i1.png").is_file()
    with (tmp_path / "tags.csv").open() as handle:
        assert [(r["file"], r["Patient's Age"]) for r in csv.DictReader(handle)] == [("s1/i1.dicom", "065Y")]
    again = imaging.convert_folder("dicom", src, dst)
    assert (again.converted, again.existing, len(again.failed)) == (0, 1, 1)
    with pytest.raises(ConversionError, match="i2.dicom"):
        imaging.convert_folder("dicom", src, dst, on_error="stop")
    assert imaging.main(["dicom", str(src), str(dst), "--overwrite"]) == 0
    assert "converted 1, already there 0, failed 1" in capsys.readouterr().out


def test_command_line_exit_codes_and_workers(tmp_path, capsys):
    videos = tmp_path / "lus_videos"
    write_video(videos / "patient_1_L1.mp4", seconds=2)
    write_video(videos / "patient_2_R1.mp4", seconds=2)
    (videos / "patient_3_L1.mp4").write_text("not a video")  # its error comes back from a worker process
    assert imaging.main(["video", str(videos), str(tmp_path / "frames"), "--workers", "2"]) == 0
    assert "converted 2, already there 0, failed 1" in capsys.readouterr().out
    assert np.abs(_pixels(tmp_path / "frames" / "patient_2_R1.png")[0, 0].astype(int) - COLOURS[1]).max() < 12
    (tmp_path / "odd").mkdir()
    write_dicom(tmp_path / "odd" / "1.2.840.5", [[0, 1]])  # a DICOM without a suffix, found by --glob
    assert imaging.main(["dicom", str(tmp_path / "odd"), str(tmp_path / "png"), "--glob", "*"]) == 0
    assert (tmp_path / "png" / "1.2.840.5.png").is_file()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.mp4").write_text("not a video")
    assert imaging.main(["video", str(tmp_path / "bad"), str(tmp_path / "out")]) == 1
    assert imaging.main(["nifti", str(tmp_path / "bad"), str(tmp_path / "out")]) == 2
    assert "no .nii / .nii.gz files" in capsys.readouterr().err


def _nan_volume(path: Path, empty_slices) -> Path:
    volume = np.full((4, 3, 3), 40.0, np.float32)
    volume[..., empty_slices] = np.nan
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(volume, np.eye(4)), path)
    return path


def test_nifti_slices_without_any_value_are_refused_and_counted_not_written_black(tmp_path):
    _nan_volume(tmp_path / "ct" / "001.nii", [0, 1, 2])
    _nan_volume(tmp_path / "ct" / "002.nii", [1])
    report = imaging.convert_folder("nifti", tmp_path / "ct", tmp_path / "out")
    assert (report.converted, len(report.failed)) == (0, 2) and not (tmp_path / "out").exists()
    assert "001.nii: every voxel is NaN (no value to show)" in report.failed[0]
    assert "002.nii: slice(s) 2 of 3 hold only NaN voxels (no value to show)" in report.failed[1]


def test_a_truncated_uncompressed_dicom_is_said_to_be_truncated_not_to_need_a_decoder(tmp_path):
    whole = write_dicom(tmp_path / "whole.dcm", np.arange(64 * 64).reshape(64, 64) % 4000).read_bytes()
    (tmp_path / "cut.dcm").write_bytes(whole[:-3000])
    with pytest.raises(ConversionError) as caught:
        imaging.dicom_to_png(tmp_path / "cut.dcm", tmp_path / "cut.png")
    message = str(caught.value)
    assert f"{tmp_path / 'cut.dcm'}: its pixel data is truncated or corrupt" in message
    assert "decoder" not in message and not (tmp_path / "cut.png").exists()
