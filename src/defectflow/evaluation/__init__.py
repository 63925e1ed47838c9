"""Evaluation: AUC per time fold, the operating threshold, the review reduction, and the gate."""
