"""scikit-learn's diabetes data (442 patients; shipped inside scikit-learn, no download) as a small
text-only clinical task with demographics, for smoke tests and CPU runs.

    python recipes/data/sklearn_diabetes.py --output data/smoke [verl-fair prepare options]

Each patient becomes a prompt listing BMI, blood pressure and six serum measurements; the label is
whether the disease progression score one year later is above the cohort median. Age is in years;
sex is coded 1/2 in the source with no documented meaning, so it is kept as the attribute
``sex_code`` ("1", "2"): train with ``algorithm.fair_grpo.group_attributes=[sex_code,age]``.
"""

import sys
import tempfile
from pathlib import Path

from verl_fair.cli import main


def patient_table() -> Path:
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame
    frame["outcome"] = (frame["target"] > frame["target"].median()).map({True: "progression",
                                                                        False: "no progression"})
    frame["sex"] = frame["sex"].astype(int).astype(str)
    frame["patient"] = [f"p{i}" for i in range(len(frame))]
    path = Path(tempfile.mkdtemp()) / "diabetes.csv"
    frame.to_csv(path, index=False)
    return path


QUESTION = ("A patient with diabetes has BMI {bmi}, mean blood pressure {bp}, total cholesterol {s1}, LDL {s2}, "
            "HDL {s3}, cholesterol/HDL {s4}, log triglycerides {s5} and blood sugar {s6}. Will the disease "
            "progress more than for the median patient within a year? Options: progression, no progression.")

if __name__ == "__main__":
    sys.exit(main(["prepare", "table", str(patient_table()), "--data-source", "diabetes", "--label-column",
                   "outcome", "--attribute-column", "sex_code=sex", "--age-column", "age", "--id-column", "patient",
                   "--question", QUESTION, *sys.argv[1:]]))
