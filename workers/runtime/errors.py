"""Errors a worker reports to Pd.

:class:`PdError` is the one a handler raises on bad input: its message goes, unchanged, to the
object's error outlet and the Pd console, so write it for the student who sent the message.
"""


class PdError(Exception):
    """A problem the user can fix; the text is shown in Pd as is."""


class Cancelled(Exception):
    """The user sent ``cancel`` (or the hub stopped the request); raised from ``req.progress``."""
