# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""A transformers ``generate`` rollout backend for verl on CPU (``actor_rollout_ref.rollout.name=transformers``).

verl's trainers generate through rollout replicas: server actors that the agent loop calls token-in,
token-out. Three parts make one:

- :class:`TransformersServer`, a Ray actor holding the model (float32, ``sdpa``) that answers
  ``generate`` with a :class:`~verl.workers.rollout.replica.TokenOutput` and takes new weights;
- :class:`TransformersReplica`, which starts one server per replica;
- :class:`TransformersServerAdapter`, living in the hybrid actor worker, which pushes the trained
  weights to the server after each step.

Exercised with the single-turn agent loop, ``n >= 1``, log-probs on and tensor parallel size 1;
multi-turn tools, partial rollouts, LoRA adapters, videos and audio are not supported.

Images work for vision-language models with M-RoPE and a processor verl binds ``get_rope_index`` to
(Qwen2-VL, Qwen2.5-VL). The agent loop sends the prompt with every ``<|image_pad|>`` run already expanded
and the images as PIL objects. The server turns them into ``pixel_values`` and ``image_grid_thw`` with
the model's processor and the request's ``mm_processor_kwargs``, as the agent loop does for the
trainer's ``multi_modal_inputs``, checks the placeholder count against the images, and passes
``mm_token_type_ids``: without them transformers' ``generate`` gives every token 1-D positions instead
of the M-RoPE positions the trainer uses. As verl's vLLM server, it never samples a vision placeholder.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

import ray
import torch
from verl.utils.config import omega_conf_to_dataclass
from verl.utils.tokenizer import get_processor_token_id
from verl.workers.config import HFModelConfig, RolloutConfig
from verl.workers.rollout.base import BaseRollout
from verl.workers.rollout.replica import RolloutReplica, TokenOutput
from verl.workers.rollout.utils import ensure_async_iterator

from verl_fair.cpu import ROLLOUT_NAME

logger = logging.getLogger(__name__)


def server_name(replica_rank: int, suffix: str = "") -> str:
    """The Ray actor name of a replica's server (the adapter finds the server by it)."""
    return f"{ROLLOUT_NAME}_server_{replica_rank}{suffix}"


@dataclass
class ImageCounts:
    """What the server saw since its last report: requests, those with images, images and image tokens."""

    requests: int = 0
    image_requests: int = 0
    images: int = 0
    image_tokens: int = 0

    def line(self, global_steps: int | None) -> str:
        per_prompt = self.image_tokens / self.image_requests if self.image_requests else 0.0
        return (
            f"{ROLLOUT_NAME} rollout, weights of step {global_steps} loaded: {self.requests} requests since the "
            f"previous weights, {self.image_requests} with images ({self.images} images, "
            f"{per_prompt:.1f} image tokens per image prompt)"
        )


class TransformersServer:
    """A causal LM or vision-language model on CPU answering verl's token-in/token-out generation requests."""

    def __init__(self, config: RolloutConfig, model_config: HFModelConfig, replica_rank: int) -> None:
        from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

        self.config: RolloutConfig = omega_conf_to_dataclass(config)
        self.model_config: HFModelConfig = omega_conf_to_dataclass(model_config, dataclass_type=HFModelConfig)
        self.replica_rank = replica_rank
        self.vision = getattr(self.model_config.hf_config, "vision_config", None) is not None
        # verl's processor for a vision-language model (HFModelConfig loads it; None for text models)
        self.processor = self.model_config.processor if self.vision else None
        if self.vision and self.processor is None:
            logger.warning(
                "%s rollout: %s is a vision-language model but verl loaded no processor for it (see verl's "
                "'Failed to create processor' warning); image prompts will be refused",
                ROLLOUT_NAME,
                self.model_config.local_path,
            )
        auto_class = AutoModelForImageTextToText if self.vision else AutoModelForCausalLM
        self.model = auto_class.from_pretrained(
            self.model_config.local_path,
            torch_dtype=torch.float32,
            attn_implementation="sdpa",
            trust_remote_code=self.model_config.trust_remote_code,
        ).eval()
        generation = self.model.generation_config
        self.pad_token_id = generation.pad_token_id if generation.pad_token_id is not None else generation.eos_token_id
        self.image_token_id = get_processor_token_id(self.processor, "image")
        # never sampled, as on verl's vLLM server: a placeholder with no image behind it breaks get_rope_index
        modalities = ("image", "video") if self.processor is not None else ()
        placeholders = (get_processor_token_id(self.processor, modality) for modality in modalities)
        self.banned_token_ids = [token for token in placeholders if token is not None]
        self.global_steps: int | None = None
        self.counts = ImageCounts()
        self._lock = threading.Lock()  # one generation or weight load at a time

    def ready(self) -> bool:
        return True

    async def generate(
        self,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        request_id: str | None = None,
        image_data: Any = None,
        video_data: Any = None,
        audio_data: Any = None,
        mm_processor_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> TokenOutput:
        if video_data is not None or audio_data is not None:
            raise NotImplementedError(
                f"the {ROLLOUT_NAME} rollout takes text and images; this request has "
                f"{'video' if video_data is not None else 'audio'}: use verl's vllm or sglang rollout on a GPU"
            )
        token_ids, log_probs = await asyncio.to_thread(
            self._generate,
            list(prompt_ids),
            dict(sampling_params),
            list(image_data) if image_data else None,
            mm_processor_kwargs,
        )
        return TokenOutput(
            token_ids=token_ids,
            log_probs=log_probs,
            stop_reason="completed",
            extra_fields={"global_steps": self.global_steps},
        )

    def _max_tokens(self, prompt_length: int, sampling_params: dict[str, Any]) -> int:
        budget = self.config.prompt_length + self.config.response_length - prompt_length
        requested = sampling_params.get(
            "max_tokens", sampling_params.get("max_new_tokens", self.config.response_length)
        )
        return max(1, min(requested, self.config.response_length, budget))

    def _vision_inputs(
        self, prompt_ids: list[int], images: list | None, mm_processor_kwargs: dict[str, Any] | None
    ) -> dict[str, torch.Tensor]:
        """``pixel_values`` (patches, C), ``image_grid_thw`` (images, 3) and ``mm_token_type_ids`` (1, L; 1 on
        image placeholders) of a prompt, from the same processor and kwargs as the trainer's inputs; {} for
        a prompt without images. ValueError when the placeholders do not match the images."""
        placeholders = prompt_ids.count(self.image_token_id) if self.image_token_id is not None else 0
        if not images:
            if placeholders:
                raise ValueError(f"the prompt has {placeholders} image placeholder tokens but the request no images")
            return {}
        if self.processor is None:
            raise NotImplementedError(
                f"the {ROLLOUT_NAME} rollout got images for {self.model_config.local_path}, which has no processor "
                "verl could load: a vision-language model with its processor is needed (for a processor whose code "
                "is in the model folder, set actor_rollout_ref.model.trust_remote_code=True)"
            )
        features = self.processor(images=images, text=None, return_tensors="pt", **(mm_processor_kwargs or {}))
        grid = features["image_grid_thw"]
        needed = int((grid.prod(-1) // self.processor.image_processor.merge_size**2).sum())
        if placeholders != needed:
            raise ValueError(
                f"the prompt has {placeholders} image placeholder tokens, its {len(images)} image(s) need {needed}"
            )
        ids = torch.tensor([prompt_ids])
        types = (ids == self.image_token_id).int()  # transformers' get_rope_index: 0 text, 1 image, 2 video
        self.counts.image_requests += 1
        self.counts.images += len(images)
        self.counts.image_tokens += needed
        return {"pixel_values": features["pixel_values"], "image_grid_thw": grid, "mm_token_type_ids": types}

    @torch.no_grad()
    def _generate(
        self,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        images: list | None = None,
        mm_processor_kwargs: dict[str, Any] | None = None,
    ) -> tuple[list[int], list[float] | None]:
        temperature = float(sampling_params.get("temperature", 1.0))
        sample = temperature > 0
        options: dict[str, Any] = dict(
            max_new_tokens=self._max_tokens(len(prompt_ids), sampling_params),
            do_sample=sample,
            pad_token_id=self.pad_token_id,
            return_dict_in_generate=True,
            output_logits=True,
        )
        if sample:
            top_k = int(sampling_params.get("top_k", -1))
            options.update(
                temperature=temperature, top_p=float(sampling_params.get("top_p", 1.0)), top_k=max(top_k, 0)
            )  # verl's -1 and transformers' 0 both mean "off"
        penalty = sampling_params.get("repetition_penalty", 1.0)
        if penalty != 1.0:
            options["repetition_penalty"] = float(penalty)
        if sampling_params.get("ignore_eos", self.config.ignore_eos):
            options["min_new_tokens"] = options["max_new_tokens"]
        if self.banned_token_ids:
            options["suppress_tokens"] = self.banned_token_ids
        prompt = torch.tensor([prompt_ids])
        with self._lock:
            vision = self._vision_inputs(prompt_ids, images, mm_processor_kwargs)
            self.counts.requests += 1
            output = self.model.generate(prompt, attention_mask=torch.ones_like(prompt), **vision, **options)
        tokens = output.sequences[0, len(prompt_ids) :]  # ends at the first EOS, inclusive
        if not sampling_params.get("logprobs", False):
            return tokens.tolist(), None
        # log-probs of the sampled tokens under the temperature-scaled distribution, as the trainer computes
        # them: from the raw logits, before top-k / top-p and the placeholder ban
        logits = torch.cat(output.logits[: len(tokens)]).float() / (temperature if sample else 1.0)
        log_probs = torch.log_softmax(logits, dim=-1).gather(-1, tokens[:, None]).squeeze(-1)
        return tokens.tolist(), log_probs.tolist()

    def load_weights(self, weights: dict[str, torch.Tensor], global_steps: int | None = None) -> None:
        with self._lock:
            missing, unexpected = self.model.load_state_dict(weights, strict=False)
            if self.vision and self.counts.requests:
                print(self.counts.line(global_steps), flush=True)  # Ray forwards it to the trainer's output
            self.counts = ImageCounts()
        if unexpected:
            raise ValueError(f"the trainer sent weights the rollout model does not have: {sorted(unexpected)[:5]}")
        tied = set(getattr(self.model, "_tied_weights_keys", None) or [])
        if set(missing) - tied:
            logger.warning("rollout weights not updated: %s", sorted(set(missing) - tied)[:5])
        self.global_steps = global_steps

    def set_global_steps(self, global_steps: int) -> None:
        self.global_steps = global_steps

    # lifecycle calls the replica forwards; a CPU model has no cache or device memory to manage
    def wake_up(self, tags: list[str] | None = None) -> None:
        return None

    def sleep(self) -> None:
        return None

    def clear_kv_cache(self) -> None:
        return None

    def release_kv_cache(self) -> None:
        return None

    def resume_kv_cache(self) -> None:
        return None

    def resume_generation(self) -> None:
        return None

    def start_profile(self, **kwargs: Any) -> None:
        return None

    def stop_profile(self) -> None:
        return None

    def abort_all_requests(self, reject_request: bool = False) -> dict[str, Any]:
        return {"aborted_count": 0, "request_ids": []}


class TransformersReplica(RolloutReplica):
    """One :class:`TransformersServer` per replica, on the host, using no GPU."""

    async def launch_servers(self) -> None:
        if self.world_size != 1:
            raise ValueError(
                f"the {ROLLOUT_NAME} rollout runs one process per replica: set "
                "actor_rollout_ref.rollout.tensor_model_parallel_size=1 (and data/pipeline parallel 1); "
                f"got world size {self.world_size}"
            )
        name = server_name(self.replica_rank, self.name_suffix)
        server = (
            ray.remote(TransformersServer)
            .options(
                name=name,
                num_cpus=0,
                max_concurrency=self.max_concurrency,
            )
            .remote(config=self.config, model_config=self.model_config, replica_rank=self.replica_rank)
        )
        await server.ready.remote()
        self.servers = [server]
        self._server_handle = server
        self._server_address = name

    def rollout_worker_use_gpu(self) -> bool:
        return False


class TransformersServerAdapter(BaseRollout):
    """The hybrid worker's side: after each training step, sends the trained weights to the server."""

    def __init__(
        self, config: RolloutConfig, model_config: HFModelConfig, device_mesh, replica_rank: int = -1, **kwargs: Any
    ) -> None:
        super().__init__(config, model_config, device_mesh)
        rank = int(os.environ.get("RANK", "0"))
        world_size = (
            self.config.tensor_model_parallel_size
            * self.config.data_parallel_size
            * self.config.pipeline_model_parallel_size
        )
        self.replica_rank = rank // world_size if replica_rank == -1 else replica_rank
        self.is_leader = rank % world_size == 0
        self._server = None

    def _server_handle(self):
        if self._server is None:
            self._server = ray.get_actor(server_name(self.replica_rank))
        return self._server

    async def resume(self, tags: list[str]) -> None:
        return None

    async def release(self) -> None:
        return None

    @torch.no_grad()
    async def update_weights(
        self,
        weights,
        wire_format: str = "named_tensors",
        global_steps: int | None = None,
        peft_config: Any = None,
        **kwargs: Any,
    ) -> None:
        if wire_format != "named_tensors":
            raise NotImplementedError(
                f"the {ROLLOUT_NAME} rollout takes full weights (wire_format='named_tensors'), "
                f"got {wire_format!r}: set "
                "actor_rollout_ref.rollout.checkpoint_engine.backend=naive"
            )
        if peft_config is not None:
            raise NotImplementedError(
                f"the {ROLLOUT_NAME} rollout takes merged weights only: set actor_rollout_ref.model.lora.merge=True"
            )
        state = {}
        async for name, tensor in ensure_async_iterator(weights):  # every rank consumes: gathering may be collective
            if self.is_leader:
                tensor = tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor
                state[name] = tensor.detach().to("cpu", copy=True)
        if self.is_leader:
            await self._server_handle().load_weights.remote(state, global_steps)
