# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""A CPU stand-in for the part of flash-attn that verl's padding helpers import (``flash_attn.bert_padding``).

Only ``scripts/check_verl.sh`` puts it on the path, and only where flash-attn is not installed: verl trees whose
``verl.utils.attention_utils`` lacks a pure-torch fallback (verl's ``neo`` branch before it merges verl main's)
import flash-attn on every host. GPU clusters install flash-attn itself.
"""
