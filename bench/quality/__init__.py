"""Model-quality benchmark on real inspection images (ELPV solar cells, `make quality`).

ELPV is put into the data contract, then the pipeline's own stage functions (validate →
featurize → train → evaluate, exactly what `defectflow pipeline` runs) are run under several
split protocols and parameter variants; the report gives fold AUCs with bootstrap intervals,
the forward-validated operating point, per-camera AUC and the time each variant costs.
"""
