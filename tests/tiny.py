"""A tiny float64 CNN and its preprocessing, shared by the analysis tests.

The model runs in float64, so its activations do not depend on how images are
batched, and results can be compared exactly with independent computations.
"""

import torch
from torch import nn
from torchvision import transforms


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
