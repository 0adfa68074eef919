"""stage-agent: a live improvising music agent for the stage."""

import functools
import hashlib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

try:
    # One version, the package's (pyproject.toml): shown by `stage-agent --version` and
    # written into every recording's header, since a byte-identical replay depends on it.
    __version__ = version("stage-agent")
except PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "unknown"


@functools.cache
def code_digest() -> str:
    """The first 16 hex digits of a sha256 over this package's Python sources (their paths and
    bytes, in path order): which code made a recording, when the version number was not
    raised between two changes of what the agent plays. Read once (about 1.5 MB)."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]
