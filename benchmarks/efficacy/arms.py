# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""The matched arms of the efficacy study and the strength knobs of the trade-off curves.

Every arm goes through verl's ``compute_advantage`` with the estimator it names; the FairGRPO arms
differ only in ``algorithm.fair_grpo`` (docs/method.md §7). The confirmatory arms are GRPO, the two
:data:`PUBLISHED` FairGRPO forms and the one configuration of :data:`SWEEP` the validation sweep picks
(``benchmarks/efficacy/PROTOCOL.md``); 0 of each strength knob is plain GRPO.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Arm:
    estimator: str
    fair_grpo: dict = field(default_factory=dict)
    knob: str | None = None  # the rule's strength knob (trade-off curve)
    summary: str = ""


POSITIVE = "<positive>"  # stands for the task's positive label (gap_dual_pos constrains its cells only)
ARMS: dict[str, Arm] = {
    "grpo": Arm("grpo", summary="verl's grpo"),
    "fair_grpo": Arm("fair_grpo", {}, summary="FairGRPO as published: 1/F weights, then / batch std"),
    "fair_grpo_mean1": Arm("fair_grpo", {"batch_std": False}, summary="FairGRPO's 1/F weights at mean 1, no batch std"),
    "official_nd": Arm("fair_grpo", {"variant": "official_nd"}, summary="the authors' label-free fair_grpo_nd"),
    "alpha_fair": Arm("fair_grpo", {"weighting": "alpha_fair"}, "alpha", "alpha-fair"),
    "group_dro": Arm("fair_grpo", {"weighting": "group_dro"}, "dro_step_size", "Group DRO"),
    "gap_dual_pos": Arm(
        "fair_grpo",
        {"weighting": "gap_dual", "dual_positive_labels": POSITIVE},
        "dual_step_size",
        "gap_dual, equal opportunity on the positive label's cells",
    ),
}
BASELINE = "grpo"
PUBLISHED = ("fair_grpo", "fair_grpo_mean1")  # the two fixed confirmatory arms
# The validation sweep (PROTOCOL.md): each rule at each strength; None: a rule without a strength knob.
SWEEP: dict[str, tuple[float | None, ...]] = {
    "group_dro": (0.1, 0.3, 1.0),
    "alpha_fair": (1.0, 2.0, 4.0),
    "gap_dual_pos": (0.05, 0.2, 1.0),
    "official_nd": (None,),
}


def algorithm_config(arm: str, attributes: tuple[str, ...], positive: str, strength: float | None = None) -> dict:
    """verl's ``algorithm`` section for ``arm`` (with its strength knob at ``strength`` when given)."""
    spec = ARMS[arm]
    fair = {**spec.fair_grpo, "group_attributes": list(attributes)}
    if fair.get("dual_positive_labels") == POSITIVE:
        fair["dual_positive_labels"] = [positive]
    if strength is not None:
        fair[spec.knob] = strength
    return {"norm_adv_by_std_in_grpo": True, "fair_grpo": fair}
