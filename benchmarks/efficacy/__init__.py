# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Fairness-efficacy benchmark: FairGRPO against GRPO and other weighting rules on a tiny policy."""
