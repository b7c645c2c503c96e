# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""One normaliser for what the reward, ``prepare``, ``report`` and the estimator all read: diagnosis labels and
demographic values."""
