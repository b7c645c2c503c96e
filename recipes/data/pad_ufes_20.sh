#!/usr/bin/env bash
# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
# PAD-UFES-20 (smartphone skin images, 6 diagnoses, age and gender) -> verl parquet.
# ROOT: the folder with metadata.csv (patient_id, lesion_id, age, gender MALE/FEMALE, fitspatrick, region,
# diagnostic ACK/BCC/MEL/NEV/SCC/SEK, img_id, ...) and images/imgs_part_{1,2,3}/<img_id>.
set -euo pipefail
ROOT=${ROOT:?set ROOT to the PAD-UFES-20 download}
OUT=${OUT:-data/pad_ufes_20}
verl-fair prepare table "$ROOT/metadata.csv" --output "$OUT" --data-source pad_ufes_20 \
    --label-column diagnostic --label-map "ACK=actinic keratosis" --label-map "BCC=basal cell carcinoma" \
    --label-map "MEL=melanoma" --label-map "NEV=nevus" --label-map "SCC=squamous cell carcinoma" \
    --label-map "SEK=seborrheic keratosis" --image-column img_id \
    --image-root "$ROOT/images/imgs_part_1" "$ROOT/images/imgs_part_2" "$ROOT/images/imgs_part_3" \
    --id-column lesion_id --sex-column gender --age-column age --attribute-column fitzpatrick=fitspatrick \
    --question "What is the diagnosis of this skin lesion on the {region}? Options: actinic keratosis, basal cell carcinoma, melanoma, nevus, squamous cell carcinoma, seborrheic keratosis." \
    "$@"
