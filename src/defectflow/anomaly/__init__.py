"""The anomaly head: a good-images-only patch model on the backbone's intermediate feature map.

The featurizer's backbone pass also yields a mid-layer map (`taps`); its patch vectors are kept
content-addressed beside the feature vectors (`store`). A patch model fitted on `pass` images
only (`patchcore`: coreset memory + nearest-neighbour distance; `padim`: a Gaussian per
location) turns every image into an anomaly score and a per-pixel map (`maps`). The score is
one more LightGBM feature and drives the novelty rule (`cv`, `novelty`); the maps are checked
against the synthetic defect boxes (`quality`) and drawn as overlays (`overlay`).
"""
