"""CORnet-Z and CORnet-S, brain-inspired networks with areas V1, V2, V4 and IT.

The models follow the published architectures of Kubilius et al. (2018, 2019)
closely enough that the published checkpoints (:data:`CORNET_WEIGHT_URLS`)
load into them strictly once the ``'module.'`` prefix of their keys is removed.
Every computation worth observing is a call of a leaf module (convolution,
batch norm, ReLU, pooling or an ``output`` identity), so forward hooks see it;
in the recurrent blocks of CORnet-S those modules run once per time step.

Seeding is left to the caller: call :func:`torch.manual_seed` before building a
model to get reproducible random weights.
"""

import math
from collections import OrderedDict

from torch import nn

__all__ = [
    "CORNET_WEIGHT_URLS",
    "CORblockZ",
    "CORblockS",
    "cornet_z",
    "cornet_s",
]

CORNET_WEIGHT_URLS = {
    "cornet_z": "https://s3.amazonaws.com/cornet-models/cornet_z-5c427c9c.pth",
    "cornet_s": "https://s3.amazonaws.com/cornet-models/cornet_s-1d3f7974.pth",
}
"""Download addresses of the published ImageNet-trained CORnet weights.

Each file holds a dict whose ``'state_dict'`` entry was saved from a
:class:`torch.nn.DataParallel` wrapper, so every key starts with ``'module.'``.
"""


def _decoder(in_features=512, n_classes=1000):
    """Build the shared read-out: global average pool, flatten, linear, output."""
    return nn.Sequential(
        OrderedDict(
            [
                ("avgpool", nn.AdaptiveAvgPool2d(1)),
                ("flatten", nn.Flatten()),
                ("linear", nn.Linear(in_features, n_classes)),
                ("output", nn.Identity()),
            ]
        )
    )


class CORblockZ(nn.Module):
    """One area of CORnet-Z: convolution, ReLU, max pooling.

    Parameters
    ----------
    in_channels : int
        Number of input channels.
    out_channels : int
        Number of output channels.
    kernel_size : int, default 3
        Side of the square convolution kernel; padding is ``kernel_size // 2``.
    stride : int, default 1
        Stride of the convolution.

    Examples
    --------
    >>> import torch
    >>> block = CORblockZ(3, 8, kernel_size=7, stride=2)
    >>> [name for name, _ in block.named_children()]
    ['conv', 'nonlin', 'pool', 'output']
    >>> tuple(block(torch.zeros(1, 3, 32, 32)).shape)
    (1, 8, 8, 8)
    """

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1):
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size=kernel_size,
            stride=stride,
            padding=kernel_size // 2,
        )
        self.nonlin = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.output = nn.Identity()

    def forward(self, x):
        """Apply convolution, ReLU, max pooling and the ``output`` identity."""
        x = self.conv(x)
        x = self.nonlin(x)
        x = self.pool(x)
        return self.output(x)


class CORblockS(nn.Module):
    """One recurrent bottleneck area of CORnet-S (V2, V4 or IT).

    The input is first projected to ``out_channels`` by ``conv_input``. Then,
    for each of ``times`` steps, a bottleneck (``conv1`` widening by
    :attr:`scale`, ``conv2`` 3x3, ``conv3`` narrowing back) is added to a skip
    path. At the first step the skip path is ``norm_skip(skip(x))`` and
    ``conv2`` has stride 2, halving the spatial size; at later steps the skip
    path is the step's input and ``conv2`` has stride 1. The convolutions, the
    ReLUs and ``output`` are shared across steps, so each runs ``times`` times
    per forward pass; every step has its own batch norms ``norm1_{t}``,
    ``norm2_{t}`` and ``norm3_{t}``. The block returns the last step's output.

    Parameters
    ----------
    in_channels : int
        Number of input channels.
    out_channels : int
        Number of output channels.
    times : int, default 1
        Number of recurrent time steps.

    Examples
    --------
    >>> import torch
    >>> block = CORblockS(4, 8, times=2)
    >>> [name for name, _ in block.named_children()][:6]
    ['conv_input', 'skip', 'norm_skip', 'conv1', 'nonlin1', 'conv2']
    >>> tuple(block(torch.zeros(1, 4, 16, 16)).shape)
    (1, 8, 8, 8)
    """

    scale = 4
    """Widening factor of the bottleneck (``conv1`` has ``scale * out_channels`` outputs)."""

    def __init__(self, in_channels, out_channels, times=1):
        super().__init__()
        width = self.scale * out_channels
        self.times = times
        self.conv_input = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        self.skip = nn.Conv2d(out_channels, out_channels, kernel_size=1, stride=2, bias=False)
        self.norm_skip = nn.BatchNorm2d(out_channels)
        self.conv1 = nn.Conv2d(out_channels, width, kernel_size=1, bias=False)
        self.nonlin1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width, width, kernel_size=3, stride=1, padding=1, bias=False)
        self.nonlin2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(width, out_channels, kernel_size=1, bias=False)
        self.nonlin3 = nn.ReLU(inplace=True)
        self.output = nn.Identity()
        for t in range(times):
            setattr(self, f"norm1_{t}", nn.BatchNorm2d(width))
            setattr(self, f"norm2_{t}", nn.BatchNorm2d(width))
            setattr(self, f"norm3_{t}", nn.BatchNorm2d(out_channels))

    def forward(self, x):
        """Run ``times`` recurrent steps and return the last step's output."""
        x = self.conv_input(x)
        for t in range(self.times):
            if t == 0:
                skip = self.norm_skip(self.skip(x))
                self.conv2.stride = (2, 2)
            else:
                skip = x
                self.conv2.stride = (1, 1)
            x = self.nonlin1(getattr(self, f"norm1_{t}")(self.conv1(x)))
            x = self.nonlin2(getattr(self, f"norm2_{t}")(self.conv2(x)))
            x = getattr(self, f"norm3_{t}")(self.conv3(x))
            x = self.nonlin3(x + skip)
            x = self.output(x)
        self.conv2.stride = (1, 1)
        return x


def cornet_z():
    """Build CORnet-Z with random weights.

    Four :class:`CORblockZ` areas (V1: 3 -> 64 channels, 7x7 stride-2
    convolution; V2: 64 -> 128, V4: 128 -> 256, IT: 256 -> 512, 3x3
    convolutions) followed by a decoder (adaptive average pool, flatten,
    linear 512 -> 1000, output identity). Convolution and linear weights are
    Xavier-uniform and biases are zero. Seed with :func:`torch.manual_seed`
    beforehand for reproducible weights.

    Returns
    -------
    torch.nn.Sequential
        The model, with children ``V1``, ``V2``, ``V4``, ``IT`` and
        ``decoder``; its state-dict keys match the published checkpoint
        (:data:`CORNET_WEIGHT_URLS`) without the ``'module.'`` prefix.

    Examples
    --------
    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> model = cornet_z()
    >>> [name for name, _ in model.named_children()]
    ['V1', 'V2', 'V4', 'IT', 'decoder']
    >>> tuple(model(torch.zeros(2, 3, 64, 64)).shape)
    (2, 1000)
    """
    model = nn.Sequential(
        OrderedDict(
            [
                ("V1", CORblockZ(3, 64, kernel_size=7, stride=2)),
                ("V2", CORblockZ(64, 128)),
                ("V4", CORblockZ(128, 256)),
                ("IT", CORblockZ(256, 512)),
                ("decoder", _decoder()),
            ]
        )
    )
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
    return model


def cornet_s():
    """Build CORnet-S with random weights.

    V1 is a plain sequence (7x7 stride-2 convolution 3 -> 64, batch norm,
    ReLU, max pool, 3x3 convolution 64 -> 64, batch norm, ReLU, output
    identity); V2 (64 -> 128 channels, 2 steps), V4 (128 -> 256, 4 steps) and
    IT (256 -> 512, 2 steps) are recurrent :class:`CORblockS` areas; the
    decoder is an adaptive average pool, flatten, linear 512 -> 1000 and an
    output identity. Convolution weights are drawn from
    ``normal(0, sqrt(2 / (k * k * out_channels)))``, batch norms start with
    weight 1 and bias 0, and the linear layer keeps PyTorch's default
    initialisation. Seed with :func:`torch.manual_seed` beforehand for
    reproducible weights.

    Returns
    -------
    torch.nn.Sequential
        The model, with children ``V1``, ``V2``, ``V4``, ``IT`` and
        ``decoder``; its state-dict keys match the published checkpoint
        (:data:`CORNET_WEIGHT_URLS`) without the ``'module.'`` prefix.

    Examples
    --------
    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> model = cornet_s()
    >>> [name for name, _ in model.named_children()]
    ['V1', 'V2', 'V4', 'IT', 'decoder']
    >>> model.V4.times
    4
    >>> tuple(model(torch.zeros(2, 3, 64, 64)).shape)
    (2, 1000)
    """
    v1 = nn.Sequential(
        OrderedDict(
            [
                ("conv1", nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)),
                ("norm1", nn.BatchNorm2d(64)),
                ("nonlin1", nn.ReLU(inplace=True)),
                ("pool", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
                ("conv2", nn.Conv2d(64, 64, kernel_size=3, stride=1, padding=1, bias=False)),
                ("norm2", nn.BatchNorm2d(64)),
                ("nonlin2", nn.ReLU(inplace=True)),
                ("output", nn.Identity()),
            ]
        )
    )
    model = nn.Sequential(
        OrderedDict(
            [
                ("V1", v1),
                ("V2", CORblockS(64, 128, times=2)),
                ("V4", CORblockS(128, 256, times=4)),
                ("IT", CORblockS(256, 512, times=2)),
                ("decoder", _decoder()),
            ]
        )
    )
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            kernel_h, kernel_w = module.kernel_size
            std = math.sqrt(2.0 / (kernel_h * kernel_w * module.out_channels))
            nn.init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return model
