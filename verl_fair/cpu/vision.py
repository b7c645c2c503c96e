# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Images for verl's RLHFDataset without qwen-vl-utils (whose module imports torchvision, absent on CPU hosts).

verl 0.9.1 extracts a prompt's images with ``qwen_vl_utils.process_vision_info``, in
``RLHFDataset._process_multi_modal_info`` (the prompt-length filter and, through
``process_multi_modal_info``, every agent loop) and ``RLHFDataset.process_vision_info``. qwen-vl-utils
0.0.14 imports torchvision when it loads, so without torchvision every image prompt fails there (and
the length filter drops it, printing the traceback).

:class:`PilVisionRLHFDataset` overrides both with a Pillow-only path that does what qwen-vl-utils
documents for images: RGB (a transparent image over white), then a resize to sides that are multiples
of ``2 * image_patch_size`` with the pixel count kept in [``min_pixels``, ``max_pixels``] (defaults
4 and 16384 image tokens; per image in the message part), or to ``resized_height`` x
``resized_width`` when the part gives them. Videos are refused (they need torchvision); audio is left
to verl. Select it with::

    data.custom_cls.path=pkg://verl_fair.cpu.vision data.custom_cls.name=PilVisionRLHFDataset

verl loads the class in the TaskRunner (the dataset) and in every agent-loop worker (image extraction).
"""

from __future__ import annotations

import asyncio
import base64
import math
import os
from io import BytesIO
from typing import Any

from PIL import Image
from verl.utils.dataset.rl_dataset import RLHFDataset

MERGE = 2  # Qwen-VL's spatial merge: one image token per 2 x 2 patches
MIN_TOKENS, MAX_TOKENS = 4, 16384  # qwen-vl-utils' image token bounds
MAX_ASPECT_RATIO = 200


def fit_to_grid(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """``(height, width)`` rounded to multiples of ``factor`` with the area kept in [min_pixels, max_pixels].

    Raises ValueError for an aspect ratio above 200, which qwen-vl-utils refuses too.
    """
    if min(height, width) < 1 or max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ValueError(f"an image of {height} x {width} pixels: the aspect ratio must be at most {MAX_ASPECT_RATIO}")
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        scale = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / scale / factor) * factor)
        w = max(factor, math.floor(width / scale / factor) * factor)
    elif h * w < min_pixels:
        scale = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * scale / factor) * factor
        w = math.ceil(width * scale / factor) * factor
    return h, w


def open_image(reference: Any) -> Image.Image:
    """A PIL image from what verl's dataset puts in a message part: an image, bytes, ``{"bytes": ...}``,
    a path, a ``file://`` URL or a base64 data URL. Remote URLs are refused (nothing is downloaded)."""
    if isinstance(reference, Image.Image):
        return reference
    if isinstance(reference, bytes | bytearray):
        return Image.open(BytesIO(reference))
    if isinstance(reference, dict) and reference.get("bytes") is not None:
        return Image.open(BytesIO(reference["bytes"]))
    if isinstance(reference, str | os.PathLike):
        reference = os.fspath(reference)
        if reference.startswith("data:image") and "base64," in reference:
            return Image.open(BytesIO(base64.b64decode(reference.split("base64,", 1)[1])))
        if reference.startswith(("http://", "https://")):
            raise ValueError(f"{reference}: remote images are not fetched; embed the bytes (verl-fair prepare)")
        return Image.open(reference.removeprefix("file://"))
    raise TypeError(f"an image must be a PIL image, bytes, {{'bytes': ...}} or a path, not {type(reference).__name__}")


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB; a transparent image is put on white first, as qwen-vl-utils does."""
    if image.mode == "RGBA":
        canvas = Image.new("RGB", image.size, (255, 255, 255))
        canvas.paste(image, mask=image.split()[3])
        return canvas
    return image.convert("RGB")


def fetch_image(part: dict[str, Any], image_patch_size: int = 14) -> Image.Image:
    """The resized RGB image of one message part (``{"type": "image", "image": ...}``, optional ``min_pixels``
    and ``max_pixels``, or ``resized_height`` and ``resized_width``)."""
    reference = part.get("image", part.get("image_url"))
    if isinstance(reference, dict) and "url" in reference:
        reference = reference["url"]
    image = to_rgb(open_image(reference))
    factor = image_patch_size * MERGE
    if "resized_height" in part and "resized_width" in part:
        height, width = int(part["resized_height"]), int(part["resized_width"])
        min_pixels, max_pixels = MIN_TOKENS * factor**2, MAX_TOKENS * factor**2
    else:
        height, width = image.height, image.width
        min_pixels = int(part.get("min_pixels", MIN_TOKENS * factor**2))
        max_pixels = int(part.get("max_pixels", MAX_TOKENS * factor**2))
    h, w = fit_to_grid(height, width, factor, min_pixels, max_pixels)
    return image.resize((w, h), Image.Resampling.BICUBIC)


def extract_images(messages: list[dict], image_patch_size: int = 14) -> list[Image.Image] | None:
    """The images of a chat's message parts in order (None when there are none); NotImplementedError for a
    video."""
    images = []
    for message in messages:
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for part in content:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "video" or "video" in part:
                raise NotImplementedError(
                    "a prompt with a video: videos need torchvision (qwen-vl-utils), this Pillow-only path takes "
                    "images; convert the video to frames (python -m verl_fair.data.imaging video ...)"
                )
            if part.get("type") in ("image", "image_url") or "image" in part:
                images.append(fetch_image(part, image_patch_size=image_patch_size))
    return images or None


class PilVisionRLHFDataset(RLHFDataset):
    """verl's RLHFDataset with images read and resized by Pillow alone (no qwen-vl-utils, no torchvision)."""

    @classmethod
    def _process_multi_modal_info(cls, messages, image_patch_size, config):
        return extract_images(messages, image_patch_size), None, cls._extract_audio_info(messages)

    @classmethod
    async def process_vision_info(cls, messages, image_patch_size, config):
        loop = asyncio.get_running_loop()  # decoding and resizing off the agent loop's event loop, as verl does
        images = await loop.run_in_executor(None, extract_images, messages, image_patch_size)
        return images, None
