"""Packaging glue that pyproject.toml cannot express: conf/ stays at the top of the repository (the
Hydra config tree) and ships inside the package as `fastdrop/conf`, so an installed wheel runs anywhere.
Everything else about the package is in pyproject.toml."""
from setuptools import find_packages, setup

setup(packages=find_packages(include=["fastdrop*"]) + ["fastdrop.conf"], package_dir={"fastdrop.conf": "conf"})
