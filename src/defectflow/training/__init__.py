"""Training: time-split cross-validation of a LightGBM classifier on CNN features."""
