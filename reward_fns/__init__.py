# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Reward functions for verl (installed as verl_fair.reward_fns)."""
