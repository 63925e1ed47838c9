"""The edge bundle's image checks are the inference core's (one implementation): re-exported here
because edge code and its users import them by this name."""

from defectflow.inference.images import ImageLimits, ImageRejected, check_header, decode_resized, to_input_tensor

__all__ = ["ImageLimits", "ImageRejected", "check_header", "decode_resized", "to_input_tensor"]
