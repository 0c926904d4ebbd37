"""The one exception type the I/O layer raises for bad user input."""

from __future__ import annotations


class TopomicsInputError(ValueError):
    """Bad user input: a path, table, element, modality, layer, key or option value.

    The message is one line that names the offending item and says what is allowed, so the
    CLI can print it as is and the plugin can show it in a notification.
    """
