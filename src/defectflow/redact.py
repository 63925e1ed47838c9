"""Keep secrets out of anything printed, logged or stored."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redact_uri(uri: str) -> str:
    """Replace the password in a URI's user-info with ***: postgresql://u:pw@h/db → postgresql://u:***@h/db."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
