# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Glue between verl and the estimator; the only package that knows verl's internals."""
