"""Shared test configuration: headless plotting and a small, fast torch."""

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

torch.set_num_threads(2)
