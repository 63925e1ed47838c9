"""Production monitoring: how well the champion does on images labelled since it was trained."""
