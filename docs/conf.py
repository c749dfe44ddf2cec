"""Sphinx configuration of the ef21fast documentation.

Built by ``bash .ci/docs`` (warnings are errors, nitpicky). The package is imported,
not mocked: autodoc needs only ``ef21fast`` installed (``pip install -e ".[docs]"``),
and importing it compiles nothing.
"""

import os
import sys

import ef21fast

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "_ext"))

project = "ef21fast"
author = "the ef21fast authors"
copyright = "the ef21fast authors"
release = ef21fast.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",       # API pages from the docstrings
    "sphinx.ext.mathjax",       # formulas of the maths page (rendered in the browser)
    "numpydoc",                 # the docstrings' numpydoc sections
    "cli_help",                 # docs/_ext/cli_help.py: the --help text of each subcommand
]

exclude_patterns = ["_build"]
root_doc = "index"
default_role = "code"  # `x` in the .rst pages is inline code, never a guessed reference

html_theme = "alabaster"  # ships with Sphinx: no extra package
html_static_path = []
html_theme_options = {"description": "Exact TopK / error-feedback kernels and EF21 methods",
                      "fixed_sidebar": False}

# --- autodoc / numpydoc -------------------------------------------------------------
autodoc_default_options = {"member-order": "bysource"}
# The docstrings state the types (numpydoc "Parameters"/"Returns"); annotations in the
# signatures would only repeat them as unresolvable cross-references.
autodoc_typehints = "none"
numpydoc_show_class_members = False  # members are listed by autodoc, not twice
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# --- nitpicky -n: references that cannot resolve here ------------------------------------
# The docs are built without network access (no intersphinx), so names of other projects
# cannot resolve; each is listed, none of ef21fast's own names is.
nitpick_ignore = [
    # numpy and scikit-learn functions named in ef21fast.methods.data
    ("py:func", "numpy.random.default_rng"),
    ("py:func", "sklearn.datasets.load_svmlight_file"),
]
