"""Shared helpers of the course "Deploy a deep-learning model without tears".

One module per stage of the data flow:
config -> synth/annotations/dataset (data) -> model -> train -> evaluate
-> export -> runtime (one Predictor for every runtime) -> hub -> app -> edge.
`processing` holds the single pre/post-processing path that every runtime shares.
"""

__version__ = "0.2.0"
