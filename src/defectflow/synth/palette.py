"""Colours of the materials on an assembled board (float RGB in [0, 1]).

Kept in one place so the look of the demo data can be tuned without touching geometry.
"""

from __future__ import annotations

SOLDER_MASK = {
    "green": (0.09, 0.30, 0.16),
    "blue": (0.07, 0.16, 0.36),
}
PAD_FINISH = {
    "hasl": (0.70, 0.70, 0.68),  # hot-air solder levelled: silvery
    "enig": (0.86, 0.70, 0.34),  # immersion gold
}
BARE_COPPER = (0.74, 0.48, 0.30)
SILKSCREEN = (0.88, 0.88, 0.84)
SOLDER = (0.80, 0.80, 0.78)
SOLDER_PASTE = (0.55, 0.55, 0.53)  # unreflowed paste left on the pads of a missing part
METAL_TERMINATION = (0.78, 0.78, 0.75)
RESISTOR_BODY = (0.10, 0.10, 0.11)
CERAMIC_BODY = (0.66, 0.52, 0.36)
MOULD_COMPOUND = (0.13, 0.13, 0.14)
MARKING = (0.62, 0.62, 0.60)
ALUMINIUM_CAN = (0.80, 0.81, 0.83)
POLARITY_STRIPE = (0.16, 0.17, 0.24)
FLUX_RESIDUE = (0.58, 0.44, 0.16)
DEBRIS = (0.12, 0.10, 0.08)
GLUE_DOT = (0.72, 0.20, 0.16)
SHADOW = (0.0, 0.0, 0.0)
