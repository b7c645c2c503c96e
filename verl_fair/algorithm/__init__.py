# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
