# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""The image demo's clinical task: synthetic chest scans where a nodule decides the diagnosis, generated
offline in a second, written as real PNG and JPEG files and prepared with ``verl-fair prepare table``.

Each patient has a sex, an age and one small greyscale scan (faintly textured tissue, 56 to 84 pixels
wide). Half the patients have a nodule and their diagnosis is ``nodule``; the others are ``normal``.
Men's nodules are solid, a small bright spot (smaller from age 50); women's show as ground-glass, a
larger faint haze, as subsolid nodules are commoner in women. The historical reads the model first learns
from (``recorded``) miss :data:`MISSED` of the hazy ones, calling them normal, as faint findings are
missed in real reads; the reward scores the true finding. The question text is the same for every
patient: only the scan tells the answer (an oracle reading it scores 100 %). Women are the minority
(30 %). Even-numbered patients are saved as greyscale PNG, odd-numbered ones as RGB JPEG. The numbers
are made up: this is a teaching task, not clinical data.
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
SIZES = ((56, 56), (64, 50), (84, 56))  # (width, height); 64 x 50 is resized to the 28-pixel grid
MISSED = 0.7  # of women's (ground-glass) nodules that the historical reads call normal


@dataclass(frozen=True)
class Marker:
    """How a nodule shows: peak brightness above the tissue (grey levels) and radius (pixels)."""

    contrast: float
    radius: float


def marker(sex: str, age: int) -> Marker:
    """A faint ground-glass haze for women, a bright solid spot for men, smaller from age 50."""
    if sex == "F":
        return Marker(contrast=30.0, radius=14.0)
    return Marker(contrast=150.0, radius=4.0 if age >= patients.AGE_SPLIT else 6.0)


def scan(rng: np.random.Generator, size: tuple[int, int], nodule: Marker | None) -> np.ndarray:
    """A (height, width) uint8 greyscale scan: smooth tissue texture, pixel noise and, when given, a nodule."""
    width, height = size
    coarse = Image.fromarray(rng.normal(0.0, 1.0, (height // 12 + 2, width // 12 + 2)).astype(np.float32), mode="F")
    texture = np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC))
    values = 100.0 + 3.0 * texture + rng.normal(0.0, 3.0, (height, width))
    if nodule is not None:
        margin = min(2 * nodule.radius, min(width, height) / 2 - 4)  # inside the scan, off its edges
        cy, cx = rng.uniform(margin, height - margin), rng.uniform(margin, width - margin)
        y, x = np.mgrid[0:height, 0:width]
        values += nodule.contrast * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * nodule.radius**2))
    return np.clip(values, 0, 255).astype(np.uint8)


def write_task(folder: str | Path, patients: int = 560, female_share: float = 0.3, seed: int = 0) -> Path:
    """Scans of ``patients`` patients in ``folder`` and a CSV (``patient``, ``image``, ``sex``, ``age``,
    ``finding``, ``recorded``) beside them; the CSV's path. ``finding`` is the truth the reward scores
    against, ``recorded`` what the historical reads say: :data:`MISSED` of women's nodules read as normal."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for number in range(patients):
        sex = "F" if rng.random() < female_share else "M"
        age = int(rng.integers(20, 86))
        nodule = bool(rng.random() < 0.5)
        missed = nodule and sex == "F" and rng.random() < MISSED
        pixels = scan(rng, SIZES[number % len(SIZES)], marker(sex, age) if nodule else None)
        if number % 2 == 0:
            name = f"scan_{number:03d}.png"
            Image.fromarray(pixels, mode="L").save(folder / name)
        else:
            name = f"scan_{number:03d}.jpg"
            Image.fromarray(pixels, mode="L").convert("RGB").save(folder / name, quality=90)
        rows.append(
            {
                "patient": f"p{number:03d}",
                "image": name,
                "sex": sex,
                "age": age,
                "finding": LABELS[0] if nodule else LABELS[1],
                "recorded": LABELS[0] if nodule and not missed else LABELS[1],
            }
        )
    return write_table(folder, rows)


def prepare(folder: str | Path, options: list[str], seed: int = 0) -> int:
    """Write the task into ``folder`` and run ``verl-fair prepare`` on it with ``options`` (at least
    ``--output FOLDER``); its exit code."""
    table = write_task(folder, seed=seed)
    return patients.prepare(table, DATA_SOURCE, "finding", QUESTION, ["--image-column", "image", *options])


def build_inputs(workdir: Path, seed: int = 0) -> None:
    """The scans and their table in ``workdir/scans``, the parquet files in ``workdir/data`` and the
    tiny Qwen2.5-VL in ``workdir/model``, warm-started on the historical reads."""
    from verl_fair.demo import vlm

    options = ["--output", str(workdir / "data"), "--val-fraction", "0.25", "--seed", str(seed)]
    code = prepare(workdir / "scans", options, seed=seed)
    if code:
        raise RuntimeError(f"preparing the image demo data failed (exit code {code})")
    records = examples(workdir / "data" / "train.parquet", workdir / "scans" / patients.TABLE)
    vlm.build(workdir / "model", records, seed=seed)


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


def examples(parquet: str | Path, table: str | Path) -> list[Example]:
    """The prompts of a prepared file as chat messages with their images (PIL) in place of ``<image>``, with
    the finding the historical reads give (``table``'s ``recorded``), boxed: what a model learns from them."""
    recorded = pd.read_csv(table, index_col="patient")["recorded"]
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
                answer=f"\\boxed{{{recorded[row.extra_info['source_id']]}}}",
                group=str(row.extra_info["demographics"]["sex"]),
            )
        )
    return out
