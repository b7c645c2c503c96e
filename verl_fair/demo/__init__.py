# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""CPU demos of verl-fair (``python -m verl_fair.demo``)."""
