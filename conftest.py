"""Root conftest of a pytest-inference checkout.

The plugin itself is installed (``pip install -e .``) and loads through its ``pytest11``
entry point, so ``-p no:inference`` can switch it off; nothing here re-registers it.
This file only says plainly when the checkout is used without installing the plugin.
"""

import importlib.util


def pytest_configure(config):
    if importlib.util.find_spec("pytest_inference") is None:  # pragma: no cover
        raise SystemExit("pytest-inference is not installed: run `pip install -e .` in this checkout first")
