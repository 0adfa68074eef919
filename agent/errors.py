"""One exception family. Exit codes are part of the service contract (systemd/README.md)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2  # bad config or a missing port: systemd must not restart in a loop


class StageAgentError(Exception):
    """Base of every error this project raises on purpose."""

    exit_code = EXIT_FAILURE


class ConfigError(StageAgentError):
    """A performance config (or a port it names) is wrong; names the file and the key."""

    exit_code = EXIT_CONFIG

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source = source
        self.key = key
        self.problem = problem
        super().__init__(f"{source}: {key}: {problem}")


class LayoutError(ConfigError):
    """A speaker layout (own TOML, or an imported SpatGRIS/IEM file) is wrong; names the file and
    the key. A user error like a bad config: exit 2, no restart loop."""


class PortError(StageAgentError):
    """A MIDI port could not be found or opened."""


class RecordingError(StageAgentError):
    """A recording (event log or MIDI file) cannot be read: missing, not a regular file, too
    large, or malformed (the message names the file and the line). Bad input, like a bad config:
    exit 2."""

    exit_code = EXIT_CONFIG


class OutputError(StageAgentError):
    """A command's output (a report, a comparison) cannot be written: a read-only folder, a
    full disk. Not the input's fault: exit 1."""


class CorpusError(StageAgentError):
    """A training corpus is unknown, not built, or does not match its manifest.

    A user error (exit 2): the message names the corpus or file and the command that fixes it.
    """

    exit_code = EXIT_CONFIG


class ModelError(StageAgentError):
    """A model checkpoint cannot be used: missing, not a checkpoint, or made for another version.

    Restarting cannot fix it, so it exits like a config error (no systemd restart loop)."""

    exit_code = EXIT_CONFIG


class AlreadyPerforming(StageAgentError):
    """Another process is performing the same piece (agent/io/instance_lock.py). Restarting
    would meet the same lock: exit 2, no restart loop; the message names the other's pid."""

    exit_code = EXIT_CONFIG
