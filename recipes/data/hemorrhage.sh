#!/usr/bin/env bash
# Intracranial hemorrhage CT (PhysioNet CT-ICH, JPEG release: Patients_CT/NNN/brain/<slice>.jpg) -> verl parquet.
# ROOT: the unpacked release, with hemorrhage_diagnosis.csv (one row per slice: PatientNumber, SliceNumber,
# Intraventricular, Intraparenchymal, Subarachnoid, Epidural, Subdural, No_Hemorrhage) and
# patient_demographics.csv ("Patient Number", "Age (years)", Gender), joined per patient.
# The NIfTI release (ct_scans/NNN.nii) must first be cut into one image per slice in the same layout.
set -euo pipefail
ROOT=${ROOT:?set ROOT to the unpacked CT-ICH release}
OUT=${OUT:-data/hemorrhage}
verl-fair prepare table "$ROOT/${CSV:-hemorrhage_diagnosis.csv}" --output "$OUT" --data-source hemorrhage \
    --label-columns Intraventricular Intraparenchymal Subarachnoid Epidural Subdural No_Hemorrhage \
    --label-map "No_Hemorrhage=no hemorrhage" \
    --image-template "Patients_CT/{PatientNumber:0>3}/brain/{SliceNumber}.jpg" --image-root "$ROOT" \
    --join "$ROOT/patient_demographics.csv:PatientNumber=Patient Number" \
    --sex-column Gender --age-column "Age (years)" \
    --question "Which types of intracranial hemorrhage does this CT slice show? Options: Intraventricular, Intraparenchymal, Subarachnoid, Epidural, Subdural, no hemorrhage." \
    "$@"
