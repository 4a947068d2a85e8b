"""Representational similarity analysis on PyTorch convolutional networks.

Every RDM is kept as one row of a long-format :class:`pandas.DataFrame`, with
its metadata in the other columns, so that meta-RDMs of any order, MDS plots,
statistics and parquet storage are one-liners.

Examples
--------
>>> import pytorch_feature_analysis as pfa
>>> models = pfa.prepare_models({'alexnet': ('alexnet', 'random')})
>>> list(pfa.fetch_layers(models['alexnet']))[:3]
[('conv1', 1), ('relu1', 2), ('maxpool1', 3)]
"""

__version__ = "0.1.0"

from . import (
    _validation,
    activations,
    anova,
    cornet,
    decoding,
    demo,
    dissim,
    encoding,
    frames,
    interpret,
    io,
    meta,
    models,
    parallel,
    plotting,
    rdms,
    scores,
    selection,
    stateful,
    stimuli,
    targets,
    testing,
    timeplots,
    video,
)
from ._validation import InvalidInputError
from .activations import *  # noqa: F401,F403
from .anova import *  # noqa: F401,F403
from .cornet import *  # noqa: F401,F403
from .decoding import *  # noqa: F401,F403
from .demo import *  # noqa: F401,F403
from .dissim import *  # noqa: F401,F403
from .encoding import *  # noqa: F401,F403
from .frames import *  # noqa: F401,F403
from .interpret import *  # noqa: F401,F403
from .io import *  # noqa: F401,F403
from .meta import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403
from .parallel import *  # noqa: F401,F403
from .plotting import *  # noqa: F401,F403
from .rdms import *  # noqa: F401,F403
from .scores import *  # noqa: F401,F403
from .selection import *  # noqa: F401,F403
from .stateful import *  # noqa: F401,F403
from .stimuli import *  # noqa: F401,F403
from .targets import *  # noqa: F401,F403
from .timeplots import *  # noqa: F401,F403
from .video import *  # noqa: F401,F403


__all__ = ["InvalidInputError"] + [
    name
    for module in (
        models,
        cornet,
        stimuli,
        video,
        stateful,
        activations,
        dissim,
        rdms,
        meta,
        targets,
        scores,
        frames,
        io,
        selection,
        plotting,
        timeplots,
        interpret,
        anova,
        decoding,
        encoding,
        parallel,
        demo,
    )
    for name in module.__all__
]
