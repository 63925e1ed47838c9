"""Keep passwords in URLs out of anything printed, logged or stored.

One helper for every URL the product is given: database URLs (results store, MLflow's
`postgresql+psycopg2://…` backend) are parsed with SQLAlchemy's own parser, the library that
reads them, so a password holding `/`, `?`, `#` or `[` is found where SQLAlchemy finds it;
http(s) URLs (MLflow servers) are split at the *last* `@` of the authority, so a raw `/`, `?`
or `#` in the password (which the standard library would take for the start of the path)
still counts as password. When in doubt the helper masks more, never less.
"""

from __future__ import annotations

import re
from urllib.parse import quote, quote_plus, unquote

MASK = "***"
_HTTP = re.compile(r"^(?P<scheme>https?://)(?P<rest>.*)$", re.IGNORECASE | re.DOTALL)


def _http_userinfo(rest: str) -> tuple[str, str | None, str] | None:
    """(username, password or None, after-@) of an http URL without its scheme, or None without user-info.

    User-info ends at the last `@` before which a `:` appears; an `@` later in a path or query
    (with no `:` before it) is not user-info.
    """
    at = rest.rfind("@")
    if at < 0:
        return None
    userinfo, after = rest[:at], rest[at + 1:]
    if ":" not in userinfo:
        # `user@host` carries no password; but `host/path@x` is not user-info at all.
        return (userinfo, None, after) if not re.search(r"[/?#]", userinfo) else None
    username, _, password = userinfo.partition(":")
    return username, password, after


def _db_url(url: str):
    """The SQLAlchemy URL for `url`, or None when SQLAlchemy cannot read it."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url)
    except (ArgumentError, ValueError):
        return None


def url_password(url: object) -> str | None:
    """The password `url` carries (as written in it), or None."""
    text = str(url) if not hasattr(url, "render_as_string") else url.render_as_string(hide_password=False)
    match = _HTTP.match(text)
    if match:
        parts = _http_userinfo(match["rest"])
        return parts[1] if parts else None
    parsed = _db_url(text)
    if parsed is None:
        parts = _http_userinfo(text.partition("://")[2]) if "://" in text else None
        return parts[1] if parts else None
    if parsed.host and "@" in parsed.host:  # a raw `@` in the password (see redact_url)
        return f"{parsed.password or ''}@{parsed.host.rsplit('@', 1)[0]}"
    return None if parsed.password is None else str(parsed.password)


def redact_url(url: object) -> str:
    """`url` (a string or a SQLAlchemy URL) with its password replaced by ***, ready to show or store.

    postgresql+psycopg2://u:S3cret/x@h:5432/db → postgresql+psycopg2://u:***@h:5432/db;
    http://u:p#w@mlflow:8080 → http://u:***@mlflow:8080. Text that is no URL is returned as is.
    """
    if hasattr(url, "render_as_string"):
        url = url.render_as_string(hide_password=False)
    text = str(url)
    match = _HTTP.match(text)
    if match:
        parts = _http_userinfo(match["rest"])
        if parts is None or parts[1] is None:
            return text
        return f"{match['scheme']}{parts[0]}:{MASK}@{parts[2]}"
    parsed = _db_url(text)
    if parsed is None:
        return _mask_generic(text)
    if parsed.host and "@" in parsed.host:
        # A raw `@` inside the password: SQLAlchemy stops at the first one; mask up to the last.
        parsed = parsed.set(host=parsed.host.rsplit("@", 1)[1], password=MASK)
    if parsed.password is None:
        return text
    return parsed.render_as_string(hide_password=True)


def _mask_generic(text: str) -> str:
    """Any other scheme://user:password@… form: mask everything between the first `:` of the
    user-info and its last `@`."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        return text
    parts = _http_userinfo(rest)
    if parts is None or parts[1] is None:
        return text
    return f"{scheme}://{parts[0]}:{MASK}@{parts[2]}"


def scrub(text: str, *urls: object) -> str:
    """`text` (an error message, a log line) with each URL in `urls` and its password masked,
    in the raw, percent-encoded and decoded forms a library may quote it in."""
    for url in urls:
        if url is None:
            continue
        raw = url.render_as_string(hide_password=False) if hasattr(url, "render_as_string") else str(url)
        if raw and raw in text:
            text = text.replace(raw, redact_url(raw))
        password = url_password(url)
        if password:
            for form in sorted({password, unquote(password), quote(password, safe=""), quote_plus(password)},
                               key=len, reverse=True):
                text = text.replace(form, MASK)
    return text


def http_credentials(url: str) -> tuple[str, str | None, str | None]:
    """An http(s) URL split into (URL without user-info, username, password), parsed as `redact_url` does."""
    match = _HTTP.match(url)
    parts = _http_userinfo(match["rest"]) if match else None
    if parts is None:
        return url, None, None
    return f"{match['scheme']}{parts[2]}", unquote(parts[0]), None if parts[1] is None else unquote(parts[1])
