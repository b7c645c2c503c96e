# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
import sys

from verl_fair.cli import main

sys.exit(main())
