"""stage-agent: a live improvising music agent for the stage."""

from importlib.metadata import PackageNotFoundError, version

try:
    # One version, the package's (pyproject.toml): shown by `stage-agent --version` and
    # written into every recording's header, since a byte-identical replay depends on it.
    __version__ = version("stage-agent")
except PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "unknown"
