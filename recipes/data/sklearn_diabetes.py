"""scikit-learn's diabetes data (442 patients; shipped inside scikit-learn, no download) as a small
text-only clinical task with demographics, for smoke tests and CPU runs (the CPU demo's task).

    python recipes/data/sklearn_diabetes.py --output data/smoke [verl-fair prepare options]

Train with ``algorithm.fair_grpo.group_attributes=[sex_code,age]``: see :mod:`verl_fair.demo.data`.
"""

import sys

from verl_fair.demo.data import prepare

if __name__ == "__main__":
    sys.exit(prepare(sys.argv[1:]))
