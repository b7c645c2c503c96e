# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Fairness-aware reinforcement learning for verl."""

__version__ = "0.1.0"
