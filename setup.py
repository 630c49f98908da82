"""Packaging detail pyproject.toml cannot say: the conformance suites ship inside the plugin.

In a checkout they live in ``suites/`` (so ``pytest suites/warm`` works from the root); installed,
they are the package ``pytest_inference.suites`` (so ``pytest --pyargs pytest_inference.suites -m warm``
works in a project that only ``pip install``ed the plugin). Everything else is in pyproject.toml.
"""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
SUITES = sorted(
    "pytest_inference.suites" + ("." + p.parent.name if p.parent.name != "suites" else "")
    for p in (HERE / "suites").glob("**/__init__.py")
    if "__pycache__" not in p.parts
)

setup(
    packages=find_packages(include=["pytest_inference", "pytest_inference.*"]) + SUITES,
    package_dir={"pytest_inference.suites": "suites"},
)
