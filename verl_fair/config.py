"""FairGRPO settings: ``algorithm.fair_grpo`` validated into a dataclass.

verl hands a registered estimator its ``algorithm`` section as an OmegaConf ``DictConfig``. FairGRPO's
knobs live under ``algorithm.fair_grpo``; :func:`FairGRPOConfig.from_algorithm` reads them, fills the
defaults of the chosen ``variant`` (method.md section 13.2) and rejects unknown keys and bad values
with an error that names the key, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

VARIANTS = ("paper", "official")
WEIGHTINGS = ("fairgrpo", "alpha_fair", "group_dro", "none")
CLUSTER_FEATURES = ("raw", "sorted")
MEMORY_MODES = ("reservoir", "sliding")
LABEL_MODES = ("auto", "required", "none")

# Guard defaults of the paper variant (method.md 13.2); the official variant has them off.
PAPER_GUARDS = {"reward_floor": 0.05, "max_weight_ratio": 100.0, "min_group_size": 16}
# A knob set to AUTO (or left out) takes the default of the chosen variant.
AUTO = "auto"


class FairGRPOConfigError(ValueError):
    """A bad ``algorithm.fair_grpo`` setting; the message names the key and the fix."""


def _fail(key: str, value: Any, allowed: str) -> FairGRPOConfigError:
    return FairGRPOConfigError(f"algorithm.fair_grpo.{key}={value!r} is not valid: expected {allowed}.")


@dataclass(frozen=True)
class HistoryConfig:
    """Statistics window: ``all`` steps, the last ``window`` steps, or an ``ema`` with decay beta."""

    mode: str = "all"  # all | window | ema
    window: int | None = None
    ema: float | None = None

    @classmethod
    def parse(cls, value: Any) -> HistoryConfig:
        allowed = "'all', {window: K} with integer K >= 1, or {ema: beta} with 0 < beta < 1"
        if value is None or value == "all":
            return cls()
        if isinstance(value, Mapping) and len(value) == 1:
            ((mode, arg),) = value.items()
            if mode == "window" and isinstance(arg, int) and not isinstance(arg, bool) and arg >= 1:
                return cls(mode="window", window=arg)
            if mode == "ema" and _is_number(arg) and 0.0 < arg < 1.0:
                return cls(mode="ema", ema=float(arg))
        raise _fail("history", _plain(value), allowed)


@dataclass(frozen=True)
class ClusterConfig:
    """Latent groups of UNK prompts: elbow over k <= k_max, features and bounded memory."""

    k_max: int = 3
    tol: float = 0.10
    features: str = "sorted"
    memory: int | None = 4096  # prompt vectors kept per domain; None = unbounded (official)
    memory_mode: str = "reservoir"
    seed: int = 0


@dataclass(frozen=True)
class FairGRPOConfig:
    """Everything the estimator reads from ``algorithm`` (see ``verl_fair/config/fair_grpo.yaml``)."""

    variant: str = "paper"
    weighting: str = "fairgrpo"
    history: HistoryConfig = field(default_factory=HistoryConfig)
    epsilon: float = 1e-6
    reward_floor: float | None = PAPER_GUARDS["reward_floor"]
    max_weight_ratio: float | None = PAPER_GUARDS["max_weight_ratio"]
    min_group_size: int | None = PAPER_GUARDS["min_group_size"]
    alpha: float = 1.0
    reward_max: float = 1.0
    dro_step_size: float = 0.01
    dro_size_adjustment: float = 0.0
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    group_attributes: tuple[str, ...] = ("sex", "age")
    age_bins: tuple[float, ...] = (25.0, 50.0, 75.0)
    data_source_key: str = "data_source"
    labels: str = "auto"
    norm_adv_by_std_in_grpo: bool = True

    @classmethod
    def from_algorithm(cls, algorithm: Mapping[str, Any] | None) -> FairGRPOConfig:
        """Build from verl's ``algorithm`` section (DictConfig, dict or None)."""
        algorithm = algorithm if algorithm is not None else {}
        norm = algorithm.get("norm_adv_by_std_in_grpo", True)
        if not isinstance(norm, bool):
            raise FairGRPOConfigError(
                f"algorithm.norm_adv_by_std_in_grpo={norm!r} is not valid: expected true or false."
            )
        section = algorithm.get("fair_grpo", None)
        return cls.from_mapping(_plain(section) if section is not None else {}, norm_adv_by_std_in_grpo=norm)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], norm_adv_by_std_in_grpo: bool = True) -> FairGRPOConfig:
        """Build from the plain ``fair_grpo`` mapping; unset knobs take the variant's defaults."""
        if not isinstance(raw, Mapping):
            raise _fail("", raw, "a mapping of FairGRPO settings")
        raw = dict(raw)
        known = {f.name for f in dataclasses.fields(cls)} - {"norm_adv_by_std_in_grpo"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise FairGRPOConfigError(
                f"algorithm.fair_grpo has unknown key(s) {unknown}; allowed keys are {sorted(known)}."
            )
        variant = raw.get("variant", "paper")
        _choice("variant", variant, VARIANTS)
        official = variant == "official"

        weighting = raw.get("weighting", "fairgrpo")
        _choice("weighting", weighting, WEIGHTINGS)
        history = HistoryConfig.parse(raw.get("history", "all"))
        if official and history.mode != "all":
            raise _fail(
                "history",
                _plain(raw["history"]),
                "'all' with variant=official (the authors' code "
                "accumulates from step 0); use variant=paper for a window or an EMA",
            )
        epsilon = _positive("epsilon", raw.get("epsilon", 1e-6))

        guards = {}
        for name, default in PAPER_GUARDS.items():
            value = raw.get(name, AUTO)
            guards[name] = (None if official else default) if value == AUTO else value
        if guards["reward_floor"] is not None:
            guards["reward_floor"] = _non_negative("reward_floor", guards["reward_floor"])
        if guards["max_weight_ratio"] is not None:
            ratio = guards["max_weight_ratio"]
            if not _is_number(ratio) or ratio < 1.0:
                raise _fail("max_weight_ratio", ratio, "a number >= 1, or null to switch the cap off")
            guards["max_weight_ratio"] = float(ratio)
        if guards["min_group_size"] is not None:
            size = guards["min_group_size"]
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise _fail("min_group_size", size, "an integer >= 0, or null to switch pooling off")

        cluster = _cluster(raw.get("cluster", {}) or {}, official)
        attributes = raw.get("group_attributes", ["sex", "age"])
        if (
            isinstance(attributes, str)
            or not isinstance(attributes, (list, tuple))
            or not attributes
            or not all(isinstance(a, str) and a for a in attributes)
        ):
            raise _fail("group_attributes", attributes, "a non-empty list of attribute names, e.g. [sex, age]")
        bins = raw.get("age_bins", [25, 50, 75])
        if (
            not isinstance(bins, (list, tuple))
            or not bins
            or not all(_is_number(b) for b in bins)
            or list(bins) != sorted(set(bins))
        ):
            raise _fail("age_bins", bins, "a non-empty, strictly increasing list of upper bin edges, e.g. [25, 50, 75]")
        labels = raw.get("labels", "auto")
        _choice("labels", labels, LABEL_MODES)
        source_key = raw.get("data_source_key", "data_source")
        if not isinstance(source_key, str) or not source_key:
            raise _fail("data_source_key", source_key, "the name of the field holding the data source")

        return cls(
            variant=variant,
            weighting=weighting,
            history=history,
            epsilon=epsilon,
            alpha=_non_negative("alpha", raw.get("alpha", 1.0)),
            reward_max=_finite("reward_max", raw.get("reward_max", 1.0)),
            dro_step_size=_non_negative("dro_step_size", raw.get("dro_step_size", 0.01)),
            dro_size_adjustment=_non_negative("dro_size_adjustment", raw.get("dro_size_adjustment", 0.0)),
            cluster=cluster,
            group_attributes=tuple(attributes),
            age_bins=tuple(float(b) for b in bins),
            data_source_key=source_key,
            labels=labels,
            norm_adv_by_std_in_grpo=norm_adv_by_std_in_grpo,
            **guards,
        )

    def fingerprint(self) -> str:
        """A stable string identifying the settings that shape the estimator state."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


def _cluster(raw: Any, official: bool) -> ClusterConfig:
    if not isinstance(raw, Mapping):
        raise _fail("cluster", raw, "a mapping with keys k_max, tol, features, memory, memory_mode, seed")
    known = {f.name for f in dataclasses.fields(ClusterConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise FairGRPOConfigError(
            f"algorithm.fair_grpo.cluster has unknown key(s) {unknown}; allowed keys are {sorted(known)}."
        )
    k_max = raw.get("k_max", 3)
    if not isinstance(k_max, int) or isinstance(k_max, bool) or k_max < 1:
        raise _fail("cluster.k_max", k_max, "an integer >= 1")
    tol = raw.get("tol", 0.10)
    if not _is_number(tol) or not 0.0 <= tol <= 1.0:
        raise _fail("cluster.tol", tol, "a number in [0, 1]")
    seed = raw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise _fail("cluster.seed", seed, "an integer")
    if official:
        for key, required in (("features", "raw"), ("memory", None), ("seed", 0)):
            if raw.get(key, AUTO) not in (AUTO, required):
                raise _fail(
                    f"cluster.{key}",
                    raw[key],
                    f"{required!r} with variant=official (the authors' clustering); use variant=paper to change it",
                )
        return ClusterConfig(k_max=k_max, tol=float(tol), features="raw", memory=None, seed=0)
    features = raw.get("features", AUTO)
    features = "sorted" if features == AUTO else features
    _choice("cluster.features", features, CLUSTER_FEATURES)
    memory = raw.get("memory", AUTO)
    memory = 4096 if memory == AUTO else memory
    if memory is not None and (not isinstance(memory, int) or isinstance(memory, bool) or memory < 2):
        raise _fail("cluster.memory", memory, "an integer >= 2 (prompt vectors kept per domain), or null for unbounded")
    memory_mode = raw.get("memory_mode", "reservoir")
    _choice("cluster.memory_mode", memory_mode, MEMORY_MODES)
    return ClusterConfig(
        k_max=k_max, tol=float(tol), features=features, memory=memory, memory_mode=memory_mode, seed=seed
    )


def _plain(value: Any) -> Any:
    """OmegaConf containers to plain Python, without importing omegaconf when it is not in use."""
    if hasattr(value, "_metadata") and type(value).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        return OmegaConf.to_container(value, resolve=True)
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _choice(key: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise _fail(key, value, "one of " + ", ".join(repr(a) for a in allowed))


def _finite(key: str, value: Any) -> float:
    if not _is_number(value):
        raise _fail(key, value, "a finite number")
    return float(value)


def _positive(key: str, value: Any) -> float:
    if not _is_number(value) or value <= 0:
        raise _fail(key, value, "a number > 0")
    return float(value)


def _non_negative(key: str, value: Any) -> float:
    if not _is_number(value) or value < 0:
        raise _fail(key, value, "a number >= 0")
    return float(value)
