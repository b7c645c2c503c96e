"""Fairness-efficacy benchmark: FairGRPO against GRPO and other weighting rules on a tiny policy."""
