"""The one exception the law fitters raise for input they cannot use."""

from __future__ import annotations


class LawInputError(ValueError):
    """Input a law cannot be fitted from: a missing column, too few points, non-positive values.

    The message is one line meant for a user (it names the file, the column or the law), so the
    CLI prints it without a traceback and exits with status 2.
    """
