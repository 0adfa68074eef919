"""stage-agent: a live improvising music agent for the stage."""

__version__ = "0.1.0"
