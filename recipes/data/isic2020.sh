#!/usr/bin/env bash
# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
# ISIC 2020 (SIIM-ISIC melanoma challenge; dermoscopy, age and sex) -> verl parquet.
# ROOT: the folder with train.csv (image_name, patient_id, sex, age_approx, anatom_site_general_challenge,
# diagnosis, benign_malignant, target) and jpeg/train/<image_name>.jpg.
# LABEL=diagnosis (default; "unknown" for most benign lesions) or LABEL=benign_malignant.
set -euo pipefail
ROOT=${ROOT:?set ROOT to the ISIC 2020 download}
OUT=${OUT:-data/isic2020}
verl-fair prepare table "$ROOT/train.csv" --output "$OUT" --data-source isic2020 \
    --label-column "${LABEL:-benign_malignant}" --image-column image_name --image-suffix .jpg \
    --image-root "$ROOT/jpeg/train" --id-column image_name --sex-column sex --age-column age_approx \
    --attribute-column site=anatom_site_general_challenge \
    --question "Is this skin lesion on the {anatom_site_general_challenge} benign or malignant?" \
    "$@"
