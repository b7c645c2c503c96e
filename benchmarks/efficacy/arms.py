"""The matched arms of the efficacy study and the strength knobs of the trade-off curves.

Every arm goes through verl's ``compute_advantage`` with the estimator it names; the FairGRPO arms
differ only in ``algorithm.fair_grpo`` (docs/method.md §7). Each rule runs at its shipped default in the
main comparison; :data:`STRENGTHS` are the other values of its strength knob that the trade-off curve
adds (0 of each knob is plain GRPO, the curve's common origin).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Arm:
    estimator: str
    fair_grpo: dict = field(default_factory=dict)
    knob: str | None = None  # the rule's strength knob (trade-off curve)
    summary: str = ""


ARMS: dict[str, Arm] = {
    "grpo": Arm("grpo", summary="verl's grpo"),
    "grpo_batch_std": Arm(
        "fair_grpo", {"weighting": "none", "batch_std": True}, summary="GRPO scores / batch std, uniform weights"
    ),
    "fair_grpo": Arm("fair_grpo", {}, summary="FairGRPO paper: 1/F weights, then / batch std"),
    "fair_grpo_mean1": Arm("fair_grpo", {"batch_std": False}, summary="FairGRPO's 1/F weights at mean 1, no batch std"),
    "fair_grpo_label_free": Arm("fair_grpo", {"labels": "none"}, summary="FairGRPO on latent groups (labels: none)"),
    "alpha_fair": Arm("fair_grpo", {"weighting": "alpha_fair"}, "alpha", "alpha-fair, alpha 1"),
    "group_dro": Arm("fair_grpo", {"weighting": "group_dro"}, "dro_step_size", "Group DRO, step size 0.01"),
    "gap_dual": Arm("fair_grpo", {"weighting": "gap_dual"}, "dual_step_size", "gap_dual, dual step size 0.05"),
}
BASELINE = "grpo"
STRENGTHS: dict[str, tuple[float, ...]] = {
    "alpha_fair": (0.5, 2.0, 4.0),
    "group_dro": (0.1, 0.3, 1.0),
    "gap_dual": (0.01, 0.2, 1.0),
}


def default_strength(arm: str) -> float:
    """The shipped default of the arm's strength knob (what the main comparison runs)."""
    from verl_fair.algorithm.weighting import WEIGHTING_RULES

    knob = ARMS[arm].knob
    rule = WEIGHTING_RULES[ARMS[arm].fair_grpo["weighting"]]
    return next(k.default for k in rule.knobs if k.key == knob)


def algorithm_config(arm: str, attributes: tuple[str, ...], strength: float | None = None) -> dict:
    """verl's ``algorithm`` section for ``arm`` (with its strength knob at ``strength`` when given)."""
    spec = ARMS[arm]
    fair = {**spec.fair_grpo, "group_attributes": list(attributes)}
    if strength is not None:
        fair[spec.knob] = strength
    return {"norm_adv_by_std_in_grpo": True, "fair_grpo": fair}
