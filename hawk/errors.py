"""The one base class of hawk's expected errors: bad input, bad config, a refused request.

Entry points print such an error as one ``error: ...`` line (the message names the file, row or key
and the reason) instead of a traceback; anything else is a bug and keeps its traceback.
"""


class HawkError(Exception):
    """An error the user can fix from its message alone."""
