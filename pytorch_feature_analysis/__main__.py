"""``python -m pytorch_feature_analysis``: the ``pfa`` command."""

from .cli import main

raise SystemExit(main())
