"""A tiny float64 CNN and its preprocessing, shared by the analysis tests.

The model runs in float64, so its activations do not depend on how images are
batched, and results can be compared exactly with independent computations.
"""

import torch
from torch import nn
from torchvision import transforms

import pytorch_feature_analysis as pfa


def to_tensor64(image):
    """Pixels in [0, 1] as a float64 tensor."""
    return transforms.functional.to_tensor(image).double()


def tiny_model():
    """conv (3 -> 4) - relu - maxpool - conv (4 -> 5) - relu - flatten - linear (180 -> 7), seeded."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 5, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(5 * 6 * 6, 7),
    )
    return model.double().eval()


def smallest_budget(image_sets, models, tolerance=100, **kwargs):
    """The smallest ``max_memory`` (within ``tolerance`` bytes) that plan_rdms accepts."""
    low, high = 1, pfa.rdms._WORK_BYTES + 2**26
    while high - low > tolerance:
        middle = (low + high) // 2
        try:
            pfa.plan_rdms(image_sets, models, max_memory=middle, **kwargs)
            high = middle
        except pfa.InvalidInputError:
            low = middle
    return high

