"""The image demo's clinical task: synthetic chest scans where a nodule decides the diagnosis, generated
offline in a second, written as real PNG and JPEG files and prepared with ``verl-fair prepare table``.

Each patient has a sex, an age and one greyscale scan (textured tissue, about 112 x 112 pixels). Half
the patients have a nodule, a bright round spot, and their diagnosis is ``nodule``; the others are
``normal``. The groups differ in how the marker shows, as imaging findings do across patients: women
(the minority, 30 %) have fainter nodules, patients aged 50 or over smaller ones, so the same finding
is harder to see for some groups. The question text is the same for every patient: only the image
tells the answer. Even-numbered patients are saved as greyscale PNG, odd-numbered ones as RGB JPEG.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from verl_fair.demo import patients
from verl_fair.demo.model import Example
from verl_fair.demo.patients import write_table

DATA_SOURCE = "chest_scan"
LABELS = ("nodule", "normal")
QUESTION = "Is there a nodule in this chest scan? Options: nodule, normal."
SIZES = ((112, 112), (128, 100), (140, 112))  # (width, height); 128 x 100 is resized to the 28-pixel grid


@dataclass(frozen=True)
class Marker:
    """How a nodule shows: peak brightness above the tissue (grey levels) and radius (pixels)."""

    contrast: float
    radius: float


def marker(sex: str, age: int) -> Marker:
    """Fainter for women, smaller from age 50: the minority's findings are the harder ones to see."""
    return Marker(contrast=30.0 if sex == "F" else 80.0, radius=5.0 if age >= patients.AGE_SPLIT else 9.0)


def scan(rng: np.random.Generator, size: tuple[int, int], nodule: Marker | None) -> np.ndarray:
    """A (height, width) uint8 greyscale scan: smooth tissue texture, pixel noise and, when given, a nodule."""
    width, height = size
    coarse = Image.fromarray(rng.normal(0.0, 1.0, (height // 12 + 2, width // 12 + 2)).astype(np.float32), mode="F")
    texture = np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC))
    values = 100.0 + 9.0 * texture + rng.normal(0.0, 4.0, (height, width))
    if nodule is not None:
        margin = nodule.radius * 2
        cy, cx = rng.uniform(margin, height - margin), rng.uniform(margin, width - margin)
        y, x = np.mgrid[0:height, 0:width]
        values += nodule.contrast * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * nodule.radius**2))
    return np.clip(values, 0, 255).astype(np.uint8)


def write_task(folder: str | Path, patients: int = 240, female_share: float = 0.3, seed: int = 0) -> Path:
    """Scans of ``patients`` patients in ``folder`` and a CSV (``patient``, ``image``, ``sex``, ``age``,
    ``finding``) beside them; the CSV's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for number in range(patients):
        sex = "F" if rng.random() < female_share else "M"
        age = int(rng.integers(20, 86))
        finding = LABELS[int(rng.random() < 0.5)]
        pixels = scan(rng, SIZES[number % len(SIZES)], marker(sex, age) if finding == "nodule" else None)
        if number % 2 == 0:
            name = f"scan_{number:03d}.png"
            Image.fromarray(pixels, mode="L").save(folder / name)
        else:
            name = f"scan_{number:03d}.jpg"
            Image.fromarray(pixels, mode="L").convert("RGB").save(folder / name, quality=90)
        rows.append({"patient": f"p{number:03d}", "image": name, "sex": sex, "age": age, "finding": finding})
    return write_table(folder, rows)


def prepare(folder: str | Path, options: list[str], seed: int = 0) -> int:
    """Write the task into ``folder`` and run ``verl-fair prepare`` on it with ``options`` (at least
    ``--output FOLDER``); its exit code."""
    table = write_task(folder, seed=seed)
    return patients.prepare(table, DATA_SOURCE, "finding", QUESTION, ["--image-column", "image", *options])


def build_inputs(workdir: Path, seed: int = 0) -> None:
    """The scans and their table in ``workdir/scans``, the parquet files in ``workdir/data`` and the
    warm-started tiny Qwen2.5-VL in ``workdir/model``."""
    from verl_fair.demo import vlm

    options = ["--output", str(workdir / "data"), "--val-fraction", "0.25", "--seed", str(seed)]
    code = prepare(workdir / "scans", options, seed=seed)
    if code:
        raise RuntimeError(f"preparing the image demo data failed (exit code {code})")
    vlm.build(workdir / "model", examples(workdir / "data" / "train.parquet"), majority="M", seed=seed)


def images_line(log: str) -> str:
    """What the rollout server reported about the images it received (its lines in the trainer's output)."""
    reports = re.findall(r"(\d+) requests since the previous weights, (\d+) with images \((\d+) images, ([\d.]+)", log)
    if not reports:
        return "images: the rollout server reported no requests (see train.log)"
    requests = sum(int(r[0]) for r in reports)
    with_images = sum(int(r[1]) for r in reports)
    tokens = sum(int(r[1]) * float(r[3]) for r in reports)
    per_prompt = tokens / with_images if with_images else 0.0
    return (
        f"images reached the model: {with_images} of {requests} rollout requests had images, "
        f"{per_prompt:.1f} image tokens per prompt"
    )


def examples(parquet: str | Path) -> list[Example]:
    """The prompts of a prepared file as chat messages with their images (PIL) in place of ``<image>``, the
    gold answer boxed, grouped by sex."""
    frame = pd.read_parquet(parquet)
    out = []
    for row in frame.itertuples():
        (message,) = row.prompt
        images = iter(Image.open(io.BytesIO(image["bytes"])) for image in row.images)
        parts = [
            {"type": "image", "image": next(images)} if piece == "<image>" else {"type": "text", "text": piece}
            for piece in re.split("(<image>)", message["content"])
            if piece
        ]
        out.append(
            Example(
                messages=[{"role": message["role"], "content": parts}],
                answer=f"\\boxed{{{row.reward_model['ground_truth']}}}",
                group=str(row.extra_info["demographics"]["sex"]),
            )
        )
    return out
