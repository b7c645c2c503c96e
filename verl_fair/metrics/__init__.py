"""Fairness metrics and audit reports."""
