#!/usr/bin/env bash
# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
# HAM10000 (dermoscopy, 7 diagnoses, age and sex) -> verl parquet.
# ROOT: the folder with HAM10000_metadata.csv (lesion_id, image_id, dx, dx_type, age, sex, localization)
# and HAM10000_images_part_1/, HAM10000_images_part_2/ holding <image_id>.jpg.
# The split uses lesion_id, so images of one lesion never straddle train and val.
set -euo pipefail
ROOT=${ROOT:?set ROOT to the HAM10000 download}
OUT=${OUT:-data/ham10000}
verl-fair prepare table "$ROOT/HAM10000_metadata.csv" --output "$OUT" --data-source ham10000 \
    --label-column dx --label-map "akiec=actinic keratosis" --label-map "bcc=basal cell carcinoma" \
    --label-map "bkl=benign keratosis" --label-map "df=dermatofibroma" --label-map "mel=melanoma" \
    --label-map "nv=melanocytic nevus" --label-map "vasc=vascular lesion" \
    --image-column image_id --image-suffix .jpg \
    --image-root "$ROOT/HAM10000_images_part_1" "$ROOT/HAM10000_images_part_2" --id-column lesion_id \
    --sex-column sex --age-column age --attribute-column site=localization \
    --question "What is the diagnosis of this skin lesion? Options: actinic keratosis, basal cell carcinoma, benign keratosis, dermatofibroma, melanoma, melanocytic nevus, vascular lesion." \
    "$@"
