"""Shared test configuration: headless plotting, a small torch, reproducible hypothesis."""

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402
from hypothesis import settings  # noqa: E402

torch.set_num_threads(2)

# The suite draws the same examples on every run, so a result never depends on
# luck; `pytest --hypothesis-profile=explore` searches with fresh random seeds.
settings.register_profile("default", derandomize=True)
settings.register_profile("explore", derandomize=False, max_examples=500)
settings.load_profile("default")
