"""Keep passwords in URLs out of anything printed, logged or stored.

One helper for every URL the product is given: database URLs (results store, MLflow's
`postgresql+psycopg2://…` backend) are parsed with SQLAlchemy's own parser, the library that
reads them, so a password holding `/`, `?`, `#` or `[` is found where SQLAlchemy finds it;
http(s) URLs (MLflow servers) and anything SQLAlchemy cannot read are split at the *last* `@`
of the text, so a raw `/`, `?` or `#` in the password (which the standard library would take
for the start of the path) still counts as password. When in doubt the helper masks more,
never less.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, quote_plus, unquote

MASK = "***"
_HTTP = re.compile(r"^https?://", re.IGNORECASE)


def _text(url: Any) -> str:
    """A string or a SQLAlchemy URL (rendered with its password) as text."""
    return url.render_as_string(hide_password=False) if hasattr(url, "render_as_string") else str(url)


def _userinfo(text: str) -> tuple[str, str, str | None, str] | None:
    """(scheme://, username, password or None, after-@) of `scheme://user[:password]@rest`, or None.

    User-info ends at the last `@` of the text whose part before it holds a `:`; an `@` in a
    path or query with no `:` before it is not user-info.
    """
    scheme, sep, rest = text.partition("://")
    at = rest.rfind("@")
    if not sep or at < 0:
        return None
    userinfo, after = rest[:at], rest[at + 1:]
    if ":" not in userinfo:
        # `user@host` carries no password; `host/path@x` is no user-info at all.
        return None if re.search(r"[/?#]", userinfo) else (scheme + sep, userinfo, None, after)
    username, _, password = userinfo.partition(":")
    return scheme + sep, username, password, after


def _db_url(text: str) -> Any:
    """The SQLAlchemy URL for `text`, or None when SQLAlchemy cannot read it (or it is http)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if _HTTP.match(text):
        return None
    try:
        return make_url(text)
    except (ArgumentError, ValueError):
        return None


def url_password(url: Any) -> str | None:
    """The password `url` carries, or None."""
    text = _text(url)
    parsed = _db_url(text)
    if parsed is None:
        parts = _userinfo(text)
        return parts[2] if parts else None
    if parsed.host and "@" in parsed.host:  # a raw `@` in the password: SQLAlchemy stops at the first
        return f"{parsed.password or ''}@{parsed.host.rsplit('@', 1)[0]}"
    return None if parsed.password is None else str(parsed.password)


def redact_url(url: Any) -> str:
    """`url` (a string or a SQLAlchemy URL) with its password replaced by ***, ready to show or store.

    postgresql+psycopg2://u:S3cret/x@h:5432/db → postgresql+psycopg2://u:***@h:5432/db;
    http://u:p#w@mlflow:8080 → http://u:***@mlflow:8080. Text that is no URL is returned as is.
    """
    text = _text(url)
    parsed = _db_url(text)
    if parsed is None:
        parts = _userinfo(text)
        if parts is None or parts[2] is None:
            return text
        scheme, username, _, after = parts
        return f"{scheme}{username}:{MASK}@{after}"
    if parsed.host and "@" in parsed.host:
        parsed = parsed.set(host=parsed.host.rsplit("@", 1)[1], password=MASK)
    return text if parsed.password is None else parsed.render_as_string(hide_password=True)


def http_credentials(url: str) -> tuple[str, str | None, str | None]:
    """An http(s) URL split into (URL without user-info, username, password), parsed as `redact_url` does."""
    parts = _userinfo(url) if _HTTP.match(url) else None
    if parts is None:
        return url, None, None
    scheme, username, password, after = parts
    return f"{scheme}{after}", unquote(username), None if password is None else unquote(password)


def scrub(text: str, *urls: Any) -> str:
    """`text` (an error message, a log line) with each URL in `urls` and its password masked,
    in the raw, percent-encoded and decoded forms a library may quote it in."""
    for url in (u for u in urls if u is not None):
        raw = _text(url)
        if raw and raw in text:
            text = text.replace(raw, redact_url(raw))
        password = url_password(url)
        if password:
            for form in sorted({password, unquote(password), quote(password, safe=""), quote_plus(password)},
                               key=len, reverse=True):
                text = text.replace(form, MASK)
    return text
