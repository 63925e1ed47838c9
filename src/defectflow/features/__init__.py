"""Featurization: ImageNet CNN backbones without their head, a content-addressed feature store,
and the stage that fills it for the images in a manifest."""
