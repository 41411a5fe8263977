"""The two kinds of failure SPEC.md distinguishes by exit status.

Core code raises these; the faces (cli, tui) turn them into one line on
stderr or a notification. Nothing a user can cause should surface as a
traceback, so anything a user can get wrong must end up as ``UserError``.
"""


class NixmodError(Exception):
    """Base class: the message is one line meant for the user."""

    exit_code = 1


class UserError(NixmodError):
    """Bad input: unknown package/version, bad spec, bad config, missing tool (exit 2)."""

    exit_code = 2


class OperationFailed(NixmodError):
    """The operation ran and failed: a build failed, a job was cancelled (exit 1)."""

    exit_code = 1
