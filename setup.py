"""Packaging beyond what pyproject.toml can say: every package under humpback/ (and pipelines/), found by discovery,
plus conf/ and sql/ shipped inside the wheel as humpback/conf and humpback/sql, where humpback.resources finds
them through importlib.resources. In the source tree they stay top-level folders (users edit them there); the
editable install reads them in place."""
from setuptools import find_namespace_packages, setup

RESOURCES = {
    "humpback.conf": ("conf", ["*.toml", "log4j2.properties"]),  # not delta-jars/ nor the vLLM requirements
    "humpback.sql": ("sql", ["*.sql"]),
}

setup(
    packages=find_namespace_packages(include=["humpback", "humpback.*", "pipelines", "pipelines.*"],
                                     exclude=["*.__pycache__", "*.__pycache__.*"]) + list(RESOURCES),
    package_dir={package: folder for package, (folder, _) in RESOURCES.items()},
    package_data={package: patterns for package, (_, patterns) in RESOURCES.items()},
)
