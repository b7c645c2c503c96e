#!/usr/bin/env bash
# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
# VinDr-Mammo (PhysioNet; mammography, BI-RADS per breast, age only) -> verl parquet.
# ROOT: the release with breast-level_annotations.csv (study_id, image_id, laterality, view_position,
# breast_birads "BI-RADS 1".."BI-RADS 5", breast_density, split), metadata.csv (DICOM tags; joined on
# "SOP Instance UID" = image_id, age in "Patient's Age" as "053Y") and the DICOM images images/<study_id>/<image_id>.dicom.
# Unless ROOT already has png/<study_id>/<image_id>.png, the DICOMs are first converted to OUT/png/... (8-bit, VOI LUT
# or window from the tags, MONOCHROME1 inverted, padding black; WORKERS=n converts in parallel). Converted images are
# kept: a later run reuses them (pass --overwrite to replace the prepared parquet).
set -euo pipefail
ROOT=${ROOT:?set ROOT to the VinDr-Mammo release}
OUT=${OUT:-data/vindr}
if [ ! -d "$ROOT/png" ]; then
    "${PYTHON:-python3}" -m verl_fair.data.imaging dicom "$ROOT/images" "$OUT/png" --workers "${WORKERS:-1}"
fi
verl-fair prepare table "$ROOT/breast-level_annotations.csv" --output "$OUT" --data-source vindr \
    --label-column breast_birads --image-template "png/{study_id}/{image_id}.png" --image-root "$ROOT" "$OUT" \
    --id-column image_id --join "$ROOT/metadata.csv:image_id=SOP Instance UID" --age-column "Patient's Age" \
    --attribute-column density=breast_density \
    --question "What is the BI-RADS assessment of this {laterality} {view_position} mammogram? Options: BI-RADS 1, BI-RADS 2, BI-RADS 3, BI-RADS 4, BI-RADS 5." \
    "$@"
