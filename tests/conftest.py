"""Shared test configuration: headless plotting, a small torch, reproducible hypothesis."""

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import settings  # noqa: E402

import pytorch_feature_analysis as pfa  # noqa: E402

torch.set_num_threads(2)

# The suite draws the same examples on every run, so a result never depends on
# luck; `pytest --hypothesis-profile=explore` searches with fresh random seeds.
settings.register_profile("default", derandomize=True)
settings.register_profile("explore", derandomize=False, max_examples=500)
settings.load_profile("default")


@pytest.fixture(scope="session")
def alexnet():
    """AlexNet with random weights, seed 0 (test modules may use their own)."""
    return pfa.prepare_model("alexnet", "random", random_state=0)


@pytest.fixture(scope="session")
def resnet18():
    """ResNet-18 with random weights, seed 0."""
    return pfa.prepare_model("resnet18", "random", random_state=0)
