"""Sphinx configuration: ``python -m sphinx -W -b html docs docs/_build/html``."""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))
sys.path.insert(0, os.path.abspath("_ext"))

import pytorch_feature_analysis  # noqa: E402

project = "pytorch_feature_analysis"
author = "pytorch_feature_analysis contributors"
copyright = "pytorch_feature_analysis contributors"
version = release = pytorch_feature_analysis.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "numpydoc",
    "pfa_api",
]

exclude_patterns = ["_build"]
templates_path = []
html_static_path = []
html_theme = "alabaster"
html_theme_options = {
    "description": "Representational similarity analysis on PyTorch CNNs",
    "fixed_sidebar": True,
}
html_sidebars = {"**": ["about.html", "navigation.html", "searchbox.html"]}

# Signatures without type hints: the numpydoc sections give the types.
autodoc_typehints = "none"
autodoc_member_order = "bysource"

numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks = set()
