# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""An image-only Qwen2.5-VL processor that needs no torchvision (the tiny demo VLM's processor).

transformers' ``Qwen2_5_VLProcessor`` has three sub-processors: image processor, tokenizer and video
processor. ``ProcessorMixin`` type-checks each one, and without torchvision the video processor's
class is a placeholder that nothing (not even ``None``) passes, so the processor cannot be built.
``ProcessorMixin.get_attributes`` reads the sub-processors from the ``__init__`` signature: this
subclass leaves ``video_processor`` out of it and so has two, the PIL image processor
(``Qwen2VLImageProcessorPil``) and the tokenizer.

It keeps the class name ``Qwen2_5_VLProcessor`` on purpose: verl's ``hf_processor`` picks the model
whose ``get_rope_index`` (M-RoPE positions) it binds to the processor by the class name, and for any
other name returns no processor at all (a warning, then text-only training).

``register_for_auto_class("AutoProcessor")`` makes ``save_pretrained`` copy this file into the model
folder and name it in ``processor_config.json`` (``auto_map``); verl then loads it with
``actor_rollout_ref.model.trust_remote_code=True``. Without that setting transformers tries its own
class, which needs torchvision, and verl continues without a processor. The copy imports only
transformers, so the model folder works without verl-fair installed. Videos are refused.
"""

from __future__ import annotations

from transformers.models.qwen2_5_vl.processing_qwen2_5_vl import Qwen2_5_VLProcessor as _Qwen2_5_VLProcessor
from transformers.processing_utils import ProcessorMixin

IMAGE_TOKEN, VIDEO_TOKEN = "<|image_pad|>", "<|video_pad|>"


class Qwen2_5_VLProcessor(_Qwen2_5_VLProcessor):  # noqa: N801 - the name verl dispatches on
    """``Qwen2_5_VLProcessor`` with an image processor and a tokenizer, no video processor."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs) -> None:
        kwargs.pop("video_processor", None)
        self.image_token = getattr(tokenizer, "image_token", None) or IMAGE_TOKEN
        self.video_token = getattr(tokenizer, "video_token", None) or VIDEO_TOKEN
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        # the parent's __init__ would pass (and type-check) a video processor
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template, **kwargs)

    def __call__(self, images=None, text=None, videos=None, audio=None, **kwargs):
        if videos is not None:
            raise NotImplementedError(
                "this Qwen2.5-VL processor takes images only (no video processor without torchvision)"
            )
        return super().__call__(images=images, text=text, audio=audio, **kwargs)


__all__ = ["Qwen2_5_VLProcessor"]
