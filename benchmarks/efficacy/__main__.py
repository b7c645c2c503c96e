# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
import sys

from benchmarks.efficacy.run import main

sys.exit(main())
