"""The validate stage: check every image listed in labels.csv and write the manifest.

Bad inputs are quarantined with a reason (never dropped, never deleted); a Great Expectations
suite then checks the usable rows as a whole. Entry point: `defectflow.validation.stage.validate`.
"""
