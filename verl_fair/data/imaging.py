# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Medical image formats to the image files ``verl-fair prepare`` reads.

- :func:`dicom_to_png`: a DICOM image to an 8- or 16-bit greyscale PNG, displayed as the file asks
  (modality LUT or rescale, then the VOI LUT or the window from the tags, MONOCHROME1 inverted,
  padding black); :func:`dicom_tags` reads the header fields a metadata table needs (the age as
  the raw DICOM string, e.g. "065Y");
- :func:`nifti_to_slices`: a 3-D NIfTI CT volume to one image per axial slice, ``1.jpg`` ... ``N.jpg``,
  in Hounsfield units through a window (the brain window, centre 40 width 80, by default);
- :func:`video_frame`: one frame of a video (at a time or an index) to an RGB PNG, decoded by PyAV,
  whose wheels ship FFmpeg.

Each raises :class:`ConversionError`, naming the file and the fix, for a file it cannot convert
faithfully, and writes nothing for it. :func:`convert_folder` converts every matching file under a
folder, with a progress bar, skipping outputs already there, and counts the converted and the
failed. From the command line::

    python -m verl_fair.data.imaging dicom images/ png/ [--bits 16] [--tags tags.csv]
    python -m verl_fair.data.imaging nifti ct_scans/ Patients_CT/ --subdir brain [--window 40 80]
    python -m verl_fair.data.imaging video lus_videos/ frames/ [--at-seconds 1 | --frame N]

Needs the ``imaging`` extra: ``pip install ".[imaging]"`` in the verl-fair clone (pydicom, nibabel, av).
"""

from __future__ import annotations

import argparse
import csv
import importlib
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

BRAIN_WINDOW = (40.0, 80.0)  # (centre, width) in HU
TAGS = (
    "SOPInstanceUID",
    "StudyInstanceUID",
    "PatientAge",
    "PatientSex",
    "ImageLaterality",
    "ViewPosition",
    "PhotometricInterpretation",
)
SUFFIXES = {
    "dicom": (".dcm", ".dicom"),
    "nifti": (".nii", ".nii.gz"),
    "video": (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"),
}
_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
_DECODERS = "pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg"


class ConversionError(ValueError):
    """A file that cannot be converted faithfully: names the file, the problem and the fix."""

    def __init__(self, path: Path | str, problem: str, fix: str) -> None:
        super().__init__(f"{path}: {problem}; {fix}")
        self.path, self.problem, self.fix = Path(path), problem, fix

    def __reduce__(self) -> tuple:  # crosses process boundaries (convert_folder's workers)
        return type(self), (self.path, self.problem, self.fix)


def _require(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"{module} is needed to convert medical images: pip install '.[imaging]' in the verl-fair clone"
        ) from error


def apply_window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """``values`` (any shape) through a linear window: ``center - width/2`` and below is 0, ``center + width/2``
    and above is 1."""
    if width <= 0:
        raise ValueError(f"window width {width} must be positive")
    return np.clip((np.asarray(values, dtype=np.float64) - (center - width / 2)) / width, 0.0, 1.0)


def _quantise(unit: np.ndarray, bits: int) -> np.ndarray:
    if bits not in (8, 16):
        raise ValueError(f"bits={bits}: expected 8 or 16")
    return np.rint(unit * (2**bits - 1)).astype(np.uint8 if bits == 8 else np.uint16)


def _save(pixels: np.ndarray, out: Path) -> Path:
    """Write ``pixels`` (H, W) or (H, W, 3) to ``out`` (PNG or JPEG by suffix) through a temporary file, so an
    interrupted run never leaves a partial image under the final name."""
    from PIL import Image

    fmt = _FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise ValueError(f"{out}: write .png, .jpg or .jpeg")
    if fmt == "JPEG" and pixels.dtype != np.uint8:
        raise ValueError(f"{out}: JPEG holds 8 bits; write a .png for 16 bits")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".part")
    Image.fromarray(pixels).save(partial, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    os.replace(partial, out)
    return out


# --- DICOM -------------------------------------------------------------------------------------------------------


def dicom_tags(path: Path | str, keywords: Sequence[str] = TAGS) -> dict[str, str]:
    """Header fields by their DICOM names ("Patient's Age": "065Y", kept as written); "" when absent."""
    pydicom = _require("pydicom")
    ds = _read_dicom_file(pydicom, Path(path), stop_before_pixels=True)
    return {pydicom.datadict.dictionary_description(k): str(ds.get(k, "") or "") for k in keywords}


def _read_dicom_file(pydicom: Any, path: Path, stop_before_pixels: bool = False) -> Any:
    try:
        return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
    except pydicom.errors.InvalidDicomError as error:
        raise ConversionError(path, "not a DICOM file (no 'DICM' header)", "convert only DICOM files") from error


def read_dicom(path: Path | str) -> np.ndarray:
    """The displayed image of a single-frame greyscale DICOM: (rows, columns) floats in [0, 1], 0 black.

    The modality LUT (or RescaleSlope/Intercept) comes first, then the VOI LUT if there is one, else the first
    WindowCenter/WindowWidth (with VOILUTFunction), else the full range of the values; the result is stretched
    to [0, 1] over the transform's output range, inverted for MONOCHROME1, and padding pixels
    (PixelPaddingValue, PixelPaddingRangeLimit) are black. Raises :class:`ConversionError` for a file that is
    not DICOM, has no pixel data, is not MONOCHROME1/2, has several frames, or whose compressed pixel data no
    installed decoder reads.
    """
    pydicom = _require("pydicom")
    from pydicom.pixels import apply_modality_lut

    path = Path(path)
    ds = _read_dicom_file(pydicom, path)
    if "PixelData" not in ds:
        raise ConversionError(path, "has no pixel data (a report or presentation state?)", "leave it out")
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ConversionError(
            path,
            f"photometric interpretation {photometric!r} is not supported",
            "only greyscale images (MONOCHROME1, MONOCHROME2) are converted",
        )
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise ConversionError(path, f"has {frames} frames", "only single-frame images are converted")
    try:
        stored = ds.pixel_array
    except (AttributeError, RuntimeError, NotImplementedError, ValueError) as error:
        syntax = ds.file_meta.get("TransferSyntaxUID")
        if syntax is not None and not syntax.is_compressed:
            raise ConversionError(
                path, f"its pixel data is truncated or corrupt ({error})", "re-export or re-download the file"
            ) from error
        raise ConversionError(
            path,
            f"its pixel data ({getattr(syntax, 'name', syntax)}) cannot be decoded: {error}",
            f"compressed pixel data needs a decoder, e.g. {_DECODERS}",
        ) from error
    try:
        unit = _voi(apply_modality_lut(stored, ds), ds)
    except (ValueError, NotImplementedError) as error:
        raise ConversionError(
            path,
            f"its VOI LUT or window cannot be applied: {error}",
            "fix the VOI LUT / WindowCenter / WindowWidth tags",
        ) from error
    if photometric == "MONOCHROME1":
        unit = 1.0 - unit
    padding = ds.get("PixelPaddingValue")
    if padding is not None:
        limit = ds.get("PixelPaddingRangeLimit", padding)
        unit[(stored >= min(padding, limit)) & (stored <= max(padding, limit))] = 0.0
    return unit


def _voi(values: np.ndarray, ds: Any) -> np.ndarray:
    """``values`` through the dataset's VOI transform, stretched to [0, 1] over that transform's output range."""
    from pydicom.pixels import apply_voi, apply_windowing

    if ds.get("VOILUTSequence"):
        entries, first = (int(v) for v in ds.VOILUTSequence[0].LUTDescriptor[:2])
        table = apply_voi(np.arange(first, first + (entries or 2**16)), ds).astype(np.float64)
        mapped, low, high = apply_voi(np.rint(values).astype(np.int64), ds), table.min(), table.max()
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        center, width = _first(ds, "WindowCenter"), _first(ds, "WindowWidth")
        reach = 10 * abs(width) + 1  # far enough below and above for LINEAR and SIGMOID alike
        low, high = apply_windowing(np.array([center - reach, center + reach]), ds)
        mapped = apply_windowing(values, ds)
    else:
        mapped, low, high = values, values.min(), values.max()
    if high == low:
        return np.zeros(np.shape(values))
    return np.clip((np.asarray(mapped, dtype=np.float64) - low) / (high - low), 0.0, 1.0)


def _first(ds: Any, keyword: str) -> float:
    element = ds[keyword]
    return float(element.value[0] if element.VM > 1 else element.value)


def dicom_to_png(path: Path | str, out: Path | str, bits: int = 8) -> Path:
    """Write the displayed image of a DICOM (see :func:`read_dicom`) as an 8- or 16-bit greyscale PNG."""
    return _save(_quantise(read_dicom(path), bits), Path(out))


# --- NIfTI -------------------------------------------------------------------------------------------------------


def _slice_names(count: int, suffix: str) -> list[str]:
    return [f"{k}{suffix}" for k in range(1, count + 1)]


def _load_nifti(path: Path) -> Any:
    nib = _require("nibabel")
    try:
        image = nib.load(path)
    except (nib.filebasedimages.ImageFileError, nib.spatialimages.HeaderDataError, EOFError) as error:
        raise ConversionError(path, f"not a NIfTI volume ({error})", "convert only .nii / .nii.gz files") from error
    shape = image.shape
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise ConversionError(
            path,
            f"a {len(image.shape)}-D image of shape {image.shape}, not a 3-D volume",
            "convert a 3-D volume (a 2-D image is already one slice)",
        )
    return image


def nifti_to_slices(
    path: Path | str, out_dir: Path | str, window: tuple[float, float] = BRAIN_WINDOW, suffix: str = ".jpg"
) -> list[Path]:
    """Write each axial slice of a 3-D NIfTI CT volume (x, y, z) as ``out_dir/<k><suffix>``, k = 1..z.

    Voxels are read in HU (nibabel applies the header's scl_slope/scl_inter) and go through the window
    ``(centre, width)``: the brain window maps 0 HU and below to black, 40 HU to mid-grey, 80 HU and above to
    white. Slice k is the k-th along the stored third axis, as CT-ICH's ``SliceNumber`` counts them; each is
    shown the radiological way, read from the affine: anterior at the top, the patient's right on the left.
    Raises :class:`ConversionError` for a file that is not NIfTI, not 3-D, whose third axis is not the
    axial (S-I) one, or with a slice of NaN voxels only (nothing to show; NaN voxels among others are black).
    Returns the written paths.
    """
    nib = _require("nibabel")
    path, out_dir = Path(path), Path(out_dir)
    image = _load_nifti(path)
    ornt = nib.orientations.io_orientation(image.affine)
    if np.isnan(ornt).any():
        raise ConversionError(path, "its affine gives no orientation", "fix the qform/sform of the header")
    if ornt[2, 0] != 2:
        axis = "RAS"[int(ornt[2, 0])]
        raise ConversionError(
            path,
            f"its third axis runs along {axis}, not S-I: the slices are not axial",
            "reorient the volume to axial slices first",
        )
    hu = np.asarray(image.get_fdata(dtype=np.float32)).reshape(image.shape[:3])
    _refuse_empty_slices(path, hu)
    if ornt[0, 0] == 0:  # axis 0 runs right-left: rows must run anterior-posterior
        hu = hu.transpose(1, 0, 2)
        ornt = ornt[[1, 0, 2]]
    # io_orientation's +1 means the index grows towards anterior (rows) or right (columns): flip those
    hu = hu[:: -1 if ornt[0, 1] > 0 else 1, :: -1 if ornt[1, 1] > 0 else 1]
    pixels = _quantise(np.nan_to_num(apply_window(hu, *window), nan=0.0), 8)
    return [
        _save(np.ascontiguousarray(pixels[:, :, k]), out_dir / name)
        for k, name in enumerate(_slice_names(pixels.shape[2], suffix))
    ]


def _refuse_empty_slices(path: Path, hu: np.ndarray) -> None:
    """:class:`ConversionError` when the volume, or a slice of it, holds NaN voxels only."""
    empty = np.flatnonzero(np.isnan(hu).all(axis=(0, 1))) + 1
    if len(empty) == hu.shape[2]:
        raise ConversionError(path, "every voxel is NaN (no value to show)", "re-export the volume")
    if len(empty):
        shown = ", ".join(str(k) for k in empty[:10]) + (" ..." if len(empty) > 10 else "")
        problem = f"slice(s) {shown} of {hu.shape[2]} hold only NaN voxels (no value to show)"
        raise ConversionError(path, problem, "re-export the volume")


# --- video -------------------------------------------------------------------------------------------------------


def video_frame(
    path: Path | str, out: Path | str, *, at_seconds: float | None = None, frame: int | None = None
) -> Path:
    """Write one frame of a video as an RGB PNG: the first shown at or after ``at_seconds`` from the start, or
    the ``frame``-th (0-based); give exactly one. Raises :class:`ConversionError` for a file that is not a
    readable video, has no video stream, or ends before the time or frame asked for."""
    if (at_seconds is None) == (frame is None):
        raise ValueError("give exactly one of at_seconds or frame")
    if (at_seconds or 0) < 0 or (frame or 0) < 0:
        raise ValueError(f"at_seconds={at_seconds}, frame={frame}: must not be negative")
    av = _require("av")
    path = Path(path)
    fix = "re-download it or leave it out"
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ConversionError(path, "has no video stream (incomplete or not a video)", fix)
            stream = container.streams.video[0]
            picked, seen = _pick_frame(container, stream, at_seconds, frame)
            if picked is None:
                wanted = f"{at_seconds} s" if frame is None else f"frame {frame}"
                raise ConversionError(path, f"ends before {wanted} ({seen})", "ask for an earlier time or frame")
            pixels = picked.to_ndarray(format="rgb24")
    except av.FFmpegError as error:
        raise ConversionError(path, f"cannot be read as a video ({error})", fix) from error
    return _save(pixels, Path(out))


def _pick_frame(container: Any, stream: Any, at_seconds: float | None, frame: int | None) -> tuple[Any, str]:
    """The wanted decoded frame (None when the video ends first) and what was seen, for the message."""
    if frame is not None:
        count = 0
        for count, decoded in enumerate(container.decode(stream), start=1):
            if count > frame:
                return decoded, ""
        return None, f"{count} frames"
    start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    if at_seconds > 0:  # to the key frame at or before the time, then decode forwards
        container.seek(int((start + at_seconds) / stream.time_base), stream=stream)
    last = None
    for decoded in container.decode(stream):
        if decoded.time is not None:
            last = decoded.time - start
            if last >= at_seconds - 1e-6:
                return decoded, ""
    return None, "no frames" if last is None else f"last frame at {last:.2f} s"


# --- folders -----------------------------------------------------------------------------------------------------


@dataclass
class FolderReport:
    """What :func:`convert_folder` did: files converted, already converted (kept), and failed (with reasons)."""

    converted: int = 0
    existing: int = 0
    failed: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"converted {self.converted}, already there {self.existing}, failed {len(self.failed)}"]
        lines += [f"  failed {message}" for message in self.failed[:20]]
        if len(self.failed) > 20:
            lines.append(f"  ... and {len(self.failed) - 20} more")
        return "\n".join(lines)


def _stem(path: Path, kind: str) -> str:
    name = path.name
    for suffix in SUFFIXES[kind]:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name  # found by --glob: keep the whole name, dots and all


def _outputs(kind: str, source: Path, relative: Path, dst: Path, options: dict[str, Any]) -> list[Path]:
    """The files converting ``source`` writes (for a volume, read from its header)."""
    target = dst / relative.parent / _stem(source, kind)
    if kind != "nifti":
        return [target.with_name(target.name + ".png")]
    folder = target / options.get("subdir", "")
    return [folder / n for n in _slice_names(_load_nifti(source).shape[2], options.get("suffix", ".jpg"))]


def _convert_one(job: tuple[str, Path, Path, dict[str, Any]]) -> ConversionError | None:
    """Convert one file; its error, or None."""
    kind, source, first_output, options = job
    try:
        if kind == "dicom":
            dicom_to_png(source, first_output, bits=options.get("bits", 8))
        elif kind == "nifti":
            nifti_to_slices(
                source, first_output.parent, options.get("window", BRAIN_WINDOW), options.get("suffix", ".jpg")
            )
        else:
            video_frame(source, first_output, at_seconds=options.get("at_seconds"), frame=options.get("frame"))
    except ConversionError as error:
        return error
    except OSError as error:
        return ConversionError(source, f"cannot be converted ({error})", "check the file and the output folder")
    return None


def convert_folder(
    kind: str,
    src: Path | str,
    dst: Path | str,
    *,
    on_error: str = "skip",
    overwrite: bool = False,
    workers: int = 1,
    glob: str | None = None,
    tags: Path | str | None = None,
    **options: Any,
) -> FolderReport:
    """Convert every ``kind`` file ("dicom", "nifti" or "video") under ``src`` into ``dst``, keeping the
    sub-folders: ``a/b.dicom`` -> ``a/b.png``, ``a/b.mp4`` -> ``a/b.png``, ``NNN.nii`` -> ``NNN/<subdir>/<k>.jpg``.

    Files are found by suffix (:data:`SUFFIXES`) or by ``glob``. Outputs already there are kept unless
    ``overwrite``. A file that fails is reported and skipped, or stops the run (``on_error="stop"``, raising
    its :class:`ConversionError`). ``options`` go to the converter: ``bits`` (dicom); ``window``, ``subdir``,
    ``suffix`` (nifti); ``at_seconds`` or ``frame`` (video, default 1 s). ``tags`` (dicom) writes a CSV of
    :func:`dicom_tags` per file converted or already there, with its path under ``src`` as "file".
    """
    from tqdm import tqdm

    if kind not in SUFFIXES:
        raise ValueError(f"kind={kind!r}: expected one of {sorted(SUFFIXES)}")
    if on_error not in ("skip", "stop"):
        raise ValueError(f"on_error={on_error!r}: expected 'skip' or 'stop'")
    if kind == "video" and options.get("frame") is None and options.get("at_seconds") is None:
        options["at_seconds"] = 1.0
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise ValueError(f"{src} is not a folder")
    found = src.rglob(glob) if glob else (p for p in src.rglob("*") if p.name.lower().endswith(SUFFIXES[kind]))
    sources = sorted(p for p in found if p.is_file())
    if not sources:
        raise ValueError(f"no {glob or ' / '.join(SUFFIXES[kind])} files under {src}")
    report, jobs, done = FolderReport(), [], []
    for source in sources:
        try:
            outputs = _outputs(kind, source, source.relative_to(src), dst, options)
        except ConversionError as error:
            _fail(report, error, on_error)
            continue
        if not overwrite and all(p.is_file() for p in outputs):
            report.existing += 1
            done.append(source)
        else:
            jobs.append((kind, source, outputs[0], options))
    pool = ProcessPoolExecutor(workers) if workers > 1 and len(jobs) > 1 else None
    try:
        results = pool.map(_convert_one, jobs, chunksize=4) if pool else map(_convert_one, jobs)
        progress = tqdm(results, total=len(jobs), desc=f"{kind} to images", unit="file")
        for job, error in zip(jobs, progress, strict=True):
            if error is None:
                report.converted += 1
                done.append(job[1])
            else:
                _fail(report, error, on_error)
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
    if tags is not None and kind == "dicom":
        _write_tags(Path(tags), src, sorted(done), report, on_error)
    return report


def _fail(report: FolderReport, error: ConversionError, on_error: str) -> None:
    if on_error == "stop":
        raise error
    report.failed.append(str(error))


def _write_tags(path: Path, src: Path, sources: list[Path], report: FolderReport, on_error: str) -> None:
    pydicom = _require("pydicom")
    rows = []
    for source in sources:
        try:
            rows.append({"file": source.relative_to(src).as_posix(), **dicom_tags(source)})
        except ConversionError as error:
            _fail(report, error, on_error)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        names = ["file", *(pydicom.datadict.dictionary_description(k) for k in TAGS)]
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        writer.writerows(rows)


# --- command line ------------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m verl_fair.data.imaging", description=__doc__.split("\n")[0])
    kinds = parser.add_subparsers(dest="kind", required=True)
    helps = {
        "dicom": "DICOM images to greyscale PNG (a/b.dicom -> a/b.png)",
        "nifti": "3-D NIfTI CT volumes to one image per axial slice (NNN.nii -> NNN/[SUBDIR/]<k>.jpg)",
        "video": "one frame per video to RGB PNG (a/b.mp4 -> a/b.png)",
    }
    commands: dict[str, argparse.ArgumentParser] = {}
    for kind, text in helps.items():
        command = commands[kind] = kinds.add_parser(kind, help=text, description=text)
        command.add_argument("src", type=Path, help="folder searched recursively")
        command.add_argument("dst", type=Path, help="output folder (the sub-folders are kept)")
        command.add_argument(
            "--on-error",
            choices=["skip", "stop"],
            default="skip",
            help="skip a file that fails (reported) or stop at it",
        )
        command.add_argument("--overwrite", action="store_true", help="convert again files already converted")
        command.add_argument("--workers", type=int, default=1, help="processes converting in parallel")
        command.add_argument("--glob", help=f"files to convert, e.g. '*' (default: {' '.join(SUFFIXES[kind])})")
    commands["dicom"].add_argument("--bits", type=int, choices=[8, 16], default=8, help="PNG bit depth")
    commands["dicom"].add_argument("--tags", type=Path, help="also write a CSV of header fields (age as '065Y')")
    commands["nifti"].add_argument(
        "--window",
        type=float,
        nargs=2,
        metavar=("CENTRE", "WIDTH"),
        default=list(BRAIN_WINDOW),
        help="HU window (default: brain, 40 80)",
    )
    commands["nifti"].add_argument("--subdir", default="", help="folder under each volume's, e.g. brain")
    commands["nifti"].add_argument("--suffix", choices=[".jpg", ".png"], default=".jpg")
    when = commands["video"].add_mutually_exclusive_group()
    when.add_argument("--at-seconds", type=float, help="the frame shown at this time (default 1)")
    when.add_argument("--frame", type=int, help="the frame with this 0-based index")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: exit status 0, or 1 when every file failed, or 2 on a usage error or a stop."""
    args = _parser().parse_args(argv)
    try:
        report = convert_folder(**vars(args))
    except (ValueError, OSError, ImportError) as error:
        print(f"verl_fair.data.imaging {args.kind}: {error}", file=sys.stderr)
        return 2
    print(report.summary())
    return 1 if report.failed and not (report.converted or report.existing) else 0


if __name__ == "__main__":
    sys.exit(main())
