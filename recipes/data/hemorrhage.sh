#!/usr/bin/env bash
# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
# Intracranial hemorrhage CT (PhysioNet CT-ICH) -> verl parquet.
# ROOT: the unpacked release, with the per-slice labels (hemorrhage_diagnosis.csv, or hemorrhage_diagnosis_raw_ct.csv
# in the NIfTI release; one row per slice: PatientNumber, SliceNumber 1..N, Intraventricular, Intraparenchymal,
# Subarachnoid, Epidural, Subdural, No_Hemorrhage) and patient_demographics.csv (or Patient_demographics.csv:
# "Patient Number", "Age (years)", Gender), joined per patient.
# Images: the JPEG release's Patients_CT/NNN/brain/<SliceNumber>.jpg; when ROOT has no Patients_CT/ but the NIfTI
# volumes ct_scans/NNN.nii, each volume is first cut into OUT/Patients_CT/NNN/brain/<k>.jpg (brain window, slice k
# the k-th of the volume; WORKERS=n converts in parallel). Converted slices are kept: a later run reuses them (pass --overwrite to replace the prepared parquet).
set -euo pipefail
ROOT=${ROOT:?set ROOT to the unpacked CT-ICH release}
OUT=${OUT:-data/hemorrhage}
if [ -n "${CSV:-}" ]; then TABLE="$ROOT/$CSV"
elif [ -f "$ROOT/hemorrhage_diagnosis.csv" ]; then TABLE="$ROOT/hemorrhage_diagnosis.csv"
else TABLE="$ROOT/hemorrhage_diagnosis_raw_ct.csv"; fi
DEMOGRAPHICS="$ROOT/patient_demographics.csv"
[ -f "$DEMOGRAPHICS" ] || DEMOGRAPHICS="$ROOT/Patient_demographics.csv"
if [ ! -d "$ROOT/Patients_CT" ] && [ -d "$ROOT/ct_scans" ]; then
    "${PYTHON:-python3}" -m verl_fair.data.imaging nifti "$ROOT/ct_scans" "$OUT/Patients_CT" --subdir brain \
        --workers "${WORKERS:-1}"
fi
verl-fair prepare table "$TABLE" --output "$OUT" --data-source hemorrhage \
    --label-columns Intraventricular Intraparenchymal Subarachnoid Epidural Subdural No_Hemorrhage \
    --label-map "No_Hemorrhage=no hemorrhage" \
    --image-template "Patients_CT/{PatientNumber:0>3}/brain/{SliceNumber}.jpg" --image-root "$ROOT" "$OUT" \
    --join "$DEMOGRAPHICS:PatientNumber=Patient Number" \
    --sex-column Gender --age-column "Age (years)" \
    --question "Which types of intracranial hemorrhage does this CT slice show? Options: Intraventricular, Intraparenchymal, Subarachnoid, Epidural, Subdural, no hemorrhage." \
    "$@"
