"""pytest-inference: claims about LLM-inference infrastructure as tests that pass or fail.

This module stays import-light: pytest loads the plugin for every run (including
``pytest --help``), so heavy libraries are imported only where they are used.
"""

__version__ = "0.1.0"
