# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""FairGRPO settings: ``algorithm.fair_grpo`` validated into a :class:`FairGRPOConfig`.

verl hands a registered estimator its ``algorithm`` section as an OmegaConf ``DictConfig``. FairGRPO's
knobs live under ``algorithm.fair_grpo``: the core knobs below (:data:`CORE_KNOBS`) and the knobs each
weighting rule declares. :meth:`FairGRPOConfig.from_algorithm` fills the defaults of the chosen
``variant`` and rejects unknown keys and bad values with one error naming every problem, its value and
what is allowed. ``python -m verl_fair.config`` prints the shipped ``configs/fair_grpo.yaml``, which is
rendered from these declarations (a test keeps the file current).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from verl_fair.algorithm.weighting import WEIGHTING_RULES
from verl_fair.settings import (
    AUTO,
    FairGRPOConfigError,
    HistoryConfig,
    Invalid,
    Knob,
    choice,
    increasing_numbers,
    integer,
    name_list,
    number,
    text,
)

__all__ = ["CORE_KNOBS", "ClusterConfig", "FairGRPOConfig", "FairGRPOConfigError", "HistoryConfig", "all_knobs"]

VARIANTS = ("paper", "official", "official_nd")
OFFICIAL_VARIANTS = ("official", "official_nd")  # the authors' code: these share the knobs' official defaults
SECTIONS = {"cluster": "latent groups of prompts without demographic labels (k-means over per-prompt reward vectors)"}


def _auto_or_bool(value: Any) -> str | bool:
    if value == AUTO or isinstance(value, bool):
        return value
    raise Invalid("auto, true or false")


def _weighting(value: Any) -> str:
    return choice(*WEIGHTING_RULES)(value)


CORE_KNOBS: tuple[Knob, ...] = (
    Knob("variant", "paper", "paper (the paper's clamp, sorted features, bounded memory, guards) | official "
         "(the authors' fair_grpo, bit for bit) | official_nd (the authors' fair_grpo_nd, bit for bit: no demographic "
         "labels, every prompt clustered within its data source)", choice(*VARIANTS)),
    Knob("weighting", "fairgrpo", "how group statistics weigh the GRPO scores:",
         _weighting),
    Knob("history", "all", "statistics window: all | {window: K} (last K steps) | {ema: beta}",
         HistoryConfig.parse, official="all", official_fixed=True),
    Knob("epsilon", 1e-6, "epsilon in every clamp and in the std denominators", number(0, 0.1, above=True)),
    Knob("reward_floor", 0.05, "floor on every group and domain mean reward that enters a factor",
         number(0, nullable=True, null_means="to switch the floor off"), official=None),
    Knob("max_weight_ratio", 100.0, "cap on the largest / smallest per-sample weight in a batch",
         number(1, 1e9, nullable=True, null_means="to switch the cap off"), official=None),
    Knob("min_group_size", 16, "a group with fewer question visits counts as this many (its weight stays "
         "bounded and never falls below a larger group's with the same mean reward)",
         integer(0, nullable=True, null_means="to switch the guard off"), official=None),
    Knob("batch_std", "auto", "divide the advantages by their batch std: auto (the rule's choice: fairgrpo yes, the "
         "others no) | true | false (fairgrpo's weights are then scaled to mean 1 instead)", _auto_or_bool,
         official="auto", official_fixed=True),
    Knob("reward_max", 1.0, "the best attainable reward (1 for rewards in [0, 1]): deficits and losses are "
         "measured from it", number()),
    Knob("cluster.k_max", 3, "largest k the elbow rule may choose", integer(1, 20)),
    Knob("cluster.tol", 0.1, "elbow: stop at the first k whose inertia drop is below tol x the previous drop",
         number(0, 1)),
    Knob("cluster.features", "sorted", "sorted | raw reward vectors", choice("sorted", "raw"), official="raw",
         official_fixed=True),
    Knob("cluster.memory", 4096, "prompt vectors kept per data source; null keeps all",
         integer(2, nullable=True, null_means="for unbounded"), official=None, official_fixed=True),
    Knob("cluster.memory_mode", "reservoir", "reservoir (uniform sample of the history) | sliding (the newest)",
         choice("reservoir", "sliding")),
    Knob("cluster.seed", 0, "seed of k-means and of the reservoir (official: 0 only)", integer(0, 2**32 - 1),
         official=0, official_fixed=True),
    Knob("group_attributes", ["sex", "age"], "attributes read from extra_info (or extra_info.demographics) and "
         "combined into the group key", name_list),
    Knob("age_bins", [25, 50, 75], "upper edges of the age bins A1..A4", increasing_numbers),
    Knob("data_source_key", "data_source", "non-tensor field naming each sample's data source (domain)", text),
    Knob("labels", "auto", "auto (labels when metadata reaches the estimator, else label-free) | required (stop "
         "without labels) | none (ignore demographic labels: every prompt is clustered within its data source)",
         choice("auto", "required", "none")),
)  # fmt: skip


def all_knobs() -> tuple[Knob, ...]:
    """The core knobs, then every registered rule's own."""
    return CORE_KNOBS + tuple(k for rule in WEIGHTING_RULES.values() for k in rule.knobs)


_CORE = {knob.key: knob for knob in CORE_KNOBS}


def _default(key: str) -> Any:
    """The parsed paper-variant default of a core knob: dataclass defaults are read from the knobs."""
    return _CORE[key].check(_CORE[key].default)


def _rule_defaults() -> tuple[tuple[str, Any], ...]:
    return tuple((k.key, k.check(k.default)) for rule in WEIGHTING_RULES.values() for k in rule.knobs)


@dataclass(frozen=True)
class ClusterConfig:
    """Latent groups of UNK prompts: elbow over k <= k_max, features and bounded memory."""

    k_max: int = _default("cluster.k_max")
    tol: float = _default("cluster.tol")
    features: str = _default("cluster.features")
    memory: int | None = _default("cluster.memory")  # prompt vectors kept per domain; None = unbounded
    memory_mode: str = _default("cluster.memory_mode")
    seed: int = _default("cluster.seed")


@dataclass(frozen=True)
class FairGRPOConfig:
    """Everything the estimator reads from ``algorithm``; each default is its knob's (paper variant)."""

    variant: str = _default("variant")
    weighting: str = _default("weighting")
    history: HistoryConfig = field(default_factory=lambda: _default("history"))
    epsilon: float = _default("epsilon")
    reward_floor: float | None = _default("reward_floor")
    max_weight_ratio: float | None = _default("max_weight_ratio")
    min_group_size: int | None = _default("min_group_size")
    batch_std: str | bool = _default("batch_std")
    reward_max: float = _default("reward_max")
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    group_attributes: tuple[str, ...] = _default("group_attributes")
    age_bins: tuple[float, ...] = _default("age_bins")
    data_source_key: str = _default("data_source_key")
    labels: str = _default("labels")
    norm_adv_by_std_in_grpo: bool = True  # verl's algorithm.norm_adv_by_std_in_grpo
    rule_settings: tuple[tuple[str, Any], ...] = field(default_factory=_rule_defaults)  # the rules' own knobs

    def rule(self, key: str) -> Any:
        """A weighting rule's setting (e.g. ``alpha``)."""
        return dict(self.rule_settings)[key]

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
        return cls.from_mapping(plain(section) if section is not None else {}, norm_adv_by_std_in_grpo=norm)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], norm_adv_by_std_in_grpo: bool = True) -> FairGRPOConfig:
        """Build from the plain ``fair_grpo`` mapping; unset knobs take the variant's defaults."""
        if not isinstance(raw, Mapping):
            raise FairGRPOConfigError(f"algorithm.fair_grpo={raw!r} is not valid: expected a mapping of settings.")
        knobs = {k.key: k for k in all_knobs()}
        values, problems = _flatten(raw, knobs)
        variant = values.get("variant", "paper")
        variant = variant if variant in VARIANTS else "paper"
        defaults = "official" if variant in OFFICIAL_VARIANTS else variant
        parsed = {}
        for key, knob in knobs.items():
            value = values.get(key, AUTO)
            if value == AUTO:
                parsed[key] = knob.check(knob.default_for(defaults))
                continue
            try:
                parsed[key] = knob.check(value)
            except Invalid as error:
                problems.append(f"algorithm.fair_grpo.{key}={_shown(value)} is not valid: expected {error}.")
                continue
            if defaults == "official" and knob.official_fixed and parsed[key] != knob.check(knob.official):
                problems.append(
                    f"algorithm.fair_grpo.{key}={_shown(value)} is not valid with variant={variant}: the authors' code "
                    f"uses {_shown(knob.official)}. Use variant=paper to change it."
                )
        problems += _implausible(parsed)
        if problems:
            raise FairGRPOConfigError(problems[0] if len(problems) == 1 else _listed(problems))
        cluster = ClusterConfig(**{k.split(".", 1)[1]: parsed[k] for k in parsed if k.startswith("cluster.")})
        rule_keys = [k.key for rule in WEIGHTING_RULES.values() for k in rule.knobs]
        return cls(
            variant=parsed["variant"],
            weighting=parsed["weighting"],
            history=parsed["history"],
            epsilon=parsed["epsilon"],
            reward_floor=parsed["reward_floor"],
            max_weight_ratio=parsed["max_weight_ratio"],
            min_group_size=parsed["min_group_size"],
            batch_std=parsed["batch_std"],
            reward_max=parsed["reward_max"],
            cluster=cluster,
            group_attributes=parsed["group_attributes"],
            age_bins=parsed["age_bins"],
            data_source_key=parsed["data_source_key"],
            labels=parsed["labels"],
            norm_adv_by_std_in_grpo=norm_adv_by_std_in_grpo,
            rule_settings=tuple((k, parsed[k]) for k in rule_keys),
        )

    def fingerprint(self) -> str:
        """A stable string identifying the settings that shape the estimator state."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


def _flatten(raw: Mapping[str, Any], knobs: Mapping[str, Knob]) -> tuple[dict[str, Any], list[str]]:
    """Dotted keys of ``raw`` (``cluster: {k_max: 3}`` -> ``cluster.k_max``) and the unknown ones as problems."""
    values, problems = {}, []
    for key, value in raw.items():
        if key in SECTIONS:
            if not isinstance(value, Mapping):
                if value is not None:
                    problems.append(f"algorithm.fair_grpo.{key}={_shown(value)} is not valid: expected a mapping.")
                continue
            values.update({f"{key}.{sub}": v for sub, v in value.items()})
        else:
            values[str(key)] = value
    for key in sorted(set(values) - set(knobs)):
        close = difflib.get_close_matches(key, list(knobs), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        problems.append(f"algorithm.fair_grpo has an unknown key {key!r}{hint} Allowed keys: {sorted(knobs)}.")
        del values[key]
    return values, problems


def _implausible(parsed: Mapping[str, Any]) -> list[str]:
    """Valid values that together would make every advantage about 0."""
    floor, best = parsed.get("reward_floor"), parsed.get("reward_max")
    if floor is None or best is None or floor < best:
        return []
    return [
        f"algorithm.fair_grpo.reward_floor={floor!r} is not valid: it must be below reward_max={best!r} (the best "
        "attainable reward), or every group's mean reward is lifted to the floor and every group weighs the same. "
        "Use a small fraction of reward_max (the default is 0.05 for rewards in [0, 1]) or null to switch it off."
    ]


def _listed(problems: list[str]) -> str:
    return f"{len(problems)} problems in algorithm.fair_grpo:\n- " + "\n- ".join(problems)


def _shown(value: Any) -> str:
    return repr(plain(value))


def plain(value: Any) -> Any:
    """OmegaConf containers to plain Python, without importing omegaconf when it is not in use."""
    if hasattr(value, "_metadata") and type(value).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        return OmegaConf.to_container(value, resolve=True)
    return value


def render_yaml() -> str:
    """The shipped ``configs/fair_grpo.yaml``: every knob with its default and a comment."""
    lines = [
        "# algorithm.fair_grpo: every FairGRPO knob with its default (variant: paper).",
        "# Generated from verl_fair/config.py and the weighting rules by `python -m verl_fair.config`; do not edit.",
        "# Merge under verl's `algorithm` section, e.g. `+algorithm.fair_grpo.variant=official` on the command line.",
        "# Knobs set to `auto` take the default of the chosen variant (paper / official, given in the comment;",
        "# official_nd takes official's); null switches a guard off.",
    ]
    rules = [f"#   {name}: {rule.summary}" for name, rule in WEIGHTING_RULES.items()]
    section = None
    for knob in CORE_KNOBS:
        head, _, tail = knob.key.partition(".")
        if tail and head != section:
            section = head
            lines += [f"# {SECTIONS[head]}", f"{head}:"]
        indent, name = ("  ", tail) if tail else ("", head)
        knob_lines = _knob_lines(knob, knob.doc, indent, name)
        lines += knob_lines[:1] + (rules if knob.key == "weighting" else []) + knob_lines[1:]
    lines.append("# settings of the weighting rules (read only by the rule they name)")
    for rule in WEIGHTING_RULES.values():
        for knob in rule.knobs:
            lines += _knob_lines(knob, knob.doc, "", knob.key)
    return "\n".join(lines) + "\n"


def _knob_lines(knob: Knob, doc: str, indent: str, name: str) -> list[str]:
    if knob.has_variant_default:
        doc += f" (auto: paper {_yaml(knob.default)} / official {_yaml(knob.official)})"
        value = AUTO
    else:
        value = _yaml(knob.default)
    return [f"{indent}# {doc}", f"{indent}{name}: {value}"]


def _yaml(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value != 0 and abs(value) < 1e-3:
        return f"{value:.1e}"
    if isinstance(value, list):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    return str(value)


if __name__ == "__main__":
    sys.stdout.write(render_yaml())
