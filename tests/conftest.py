# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def fresh_fair_grpo_state():
    """Every test starts with no FairGRPO statistics and no published metadata."""
    from verl_fair.integration import context

    context.reset_state()
    yield
    context.reset_state()
