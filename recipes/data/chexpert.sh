#!/usr/bin/env bash
# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
# CheXpert (Stanford, chest X-ray, 14 observations, age and sex) -> verl parquet.
# ROOT: the folder holding CheXpert-v1.0-small/ (train.csv with Path, Sex, Age, 14 label columns).
# Labels: 1.0 positive; 0.0, -1.0 (uncertain) and blank are not positive. Extra arguments pass through.
set -euo pipefail
ROOT=${ROOT:?set ROOT to the folder holding CheXpert-v1.0-small}
OUT=${OUT:-data/chexpert}
OBSERVATIONS=("No Finding" "Enlarged Cardiomediastinum" "Cardiomegaly" "Lung Opacity" "Lung Lesion" "Edema"
              "Consolidation" "Pneumonia" "Atelectasis" "Pneumothorax" "Pleural Effusion" "Pleural Other"
              "Fracture" "Support Devices")
verl-fair prepare table "$ROOT/CheXpert-v1.0-small/${CSV:-train.csv}" --output "$OUT" --data-source chexpert \
    --label-columns "${OBSERVATIONS[@]}" --image-column Path --image-root "$ROOT" --id-column Path \
    --sex-column Sex --age-column Age \
    --question "Which findings are present in this chest X-ray? Options: $(IFS=,; echo "${OBSERVATIONS[*]}" | sed 's/,/, /g')." \
    "$@"
