"""defectflow: image pass/fail classification from CNN features and LightGBM, gated by time-split AUC."""

__version__ = "0.1.0"
