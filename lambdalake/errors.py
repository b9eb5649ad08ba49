"""The one error type the CLI turns into a single readable line."""


class LambdalakeError(Exception):
    """A problem the user can fix: the message names what is wrong and how to fix it."""
