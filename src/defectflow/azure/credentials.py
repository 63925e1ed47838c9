"""Build a `BlobServiceClient` from configuration, and keep every secret out of output.

Secrets come only from the environment (never params.yaml, never the command line, so they do
not land in shell history, DVC-tracked files or MLflow params):

| mode                | environment                                                                                    |
|---------------------|------------------------------------------------------------------------------------------------|
| `connection_string` | AZURE_STORAGE_CONNECTION_STRING                                                                |
| `account_key`       | AZURE_STORAGE_ACCOUNT_URL + AZURE_STORAGE_KEY (+ AZURE_STORAGE_ACCOUNT if the URL lacks it)    |
| `sas`               | AZURE_STORAGE_ACCOUNT_URL + AZURE_STORAGE_SAS_TOKEN                                            |
| `default`           | AZURE_STORAGE_ACCOUNT_URL; DefaultAzureCredential (AKS managed/workload identity, az login...) |

`auto` (the default) picks the first mode whose variables are set, in the order above. The
account URL is not a secret and may also come from params (`azure.account_url`).
"""

from __future__ import annotations

import logging
import os
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from defectflow.errors import ConfigError

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

    from defectflow.params import AzureParams

ENV_CONNECTION_STRING = "AZURE_STORAGE_CONNECTION_STRING"
ENV_ACCOUNT_URL = "AZURE_STORAGE_ACCOUNT_URL"
ENV_ACCOUNT_NAME = "AZURE_STORAGE_ACCOUNT"
ENV_ACCOUNT_KEY = "AZURE_STORAGE_KEY"
ENV_SAS_TOKEN = "AZURE_STORAGE_SAS_TOKEN"
SECRET_ENV_VARS = (ENV_CONNECTION_STRING, ENV_ACCOUNT_KEY, ENV_SAS_TOKEN)
AUTH_MODES = ("auto", "connection_string", "account_key", "sas", "default")

REDACTED = "***"
# Secret-bearing fragments whatever their origin: connection-string fields and SAS signatures.
_SECRET_PATTERNS = (
    re.compile(r"(?i)\b(AccountKey|SharedAccessSignature|SharedAccessKey)=[^;\s'\"]+"),
    re.compile(r"(?i)([?&;\s]sig=)[^&;\s'\"]+"),
)


class AzureConfigError(ConfigError):
    """Azure credentials or account settings are missing or inconsistent."""


def known_secrets(env: Mapping[str, str] | None = None) -> list[str]:
    """The secret values present in `env`, including the key embedded in a connection string."""
    env = os.environ if env is None else env
    values = [env[name] for name in SECRET_ENV_VARS if env.get(name)]
    conn = env.get(ENV_CONNECTION_STRING, "")
    for field in conn.split(";"):
        name, _, value = field.partition("=")
        if name.strip().lower() in {"accountkey", "sharedaccesssignature"} and value:
            values.append(value)
    sas = env.get(ENV_SAS_TOKEN, "")
    values += urllib.parse.parse_qs(sas.lstrip("?")).get("sig", [])
    return [v for v in values if len(v) >= 8]


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """Remove secrets from `text`: the known values (plain and URL-encoded) and secret-looking fields."""
    for secret in sorted(known_secrets() if secrets is None else secrets, key=len, reverse=True):
        for form in {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}:
            text = text.replace(form, REDACTED)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(0)[: m.group(0).index("=") + 1] + REDACTED, text)
    return text


class RedactingFilter(logging.Filter):
    """Logging filter that rewrites each record's final message through `redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install_log_redaction() -> None:
    """Attach `RedactingFilter` to every root handler (idempotent), so no library can log a secret."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


def resolve_auth_mode(requested: str, account_url: str | None, env: Mapping[str, str]) -> str:
    """Pick the credential mode: `requested`, or for `auto` the first one whose variables are set."""
    if requested not in AUTH_MODES:
        raise AzureConfigError(f"azure.auth must be one of {', '.join(AUTH_MODES)}, got {requested!r}")
    if requested != "auto":
        return requested
    if env.get(ENV_CONNECTION_STRING):
        return "connection_string"
    if account_url and env.get(ENV_ACCOUNT_KEY):
        return "account_key"
    if account_url and env.get(ENV_SAS_TOKEN):
        return "sas"
    if account_url:
        return "default"
    raise AzureConfigError(
        f"no Azure credentials configured: set {ENV_CONNECTION_STRING}, or {ENV_ACCOUNT_URL} (or params "
        f"azure.account_url) together with {ENV_ACCOUNT_KEY}, {ENV_SAS_TOKEN}, or a managed identity "
        "(DefaultAzureCredential); see docs/azure.md"
    )


def account_name_from_url(account_url: str) -> str:
    """`https://NAME.blob.core.windows.net` → NAME; emulator style `http://host:port/NAME` → NAME."""
    parsed = urllib.parse.urlparse(account_url)
    host = parsed.hostname or ""
    if ".blob." in host:
        return host.split(".", 1)[0]
    segment = parsed.path.strip("/").split("/", 1)[0]
    if not segment:
        raise AzureConfigError(f"cannot tell the account name from {account_url!r}: set {ENV_ACCOUNT_NAME}")
    return segment


def _account_url(params: AzureParams, env: Mapping[str, str]) -> str | None:
    url = params.account_url or env.get(ENV_ACCOUNT_URL) or None
    if url and urllib.parse.urlparse(url).query:
        # A query string here is almost always a SAS token pasted into the URL: refuse it so the
        # token does not get logged or stored as a non-secret setting.
        raise AzureConfigError(
            f"the account URL must not carry a query string; put a SAS token in {ENV_SAS_TOKEN} instead"
        )
    return url


def describe_auth(params: AzureParams, env: Mapping[str, str] | None = None) -> str:
    """A log-safe one-liner naming the credential mode and endpoint (no secret)."""
    env = os.environ if env is None else env
    url = _account_url(params, env)
    mode = resolve_auth_mode(params.auth, url, env)
    return f"{mode} ({url or 'endpoint from the connection string'})"


def blob_service_client(params: AzureParams, env: Mapping[str, str] | None = None) -> BlobServiceClient:
    """Build the client for the configured mode, with the retry policy and timeouts from params.

    Every error raised here has its message redacted: SDK parsing errors may quote the input.
    """
    from azure.storage.blob import BlobServiceClient, ExponentialRetry

    env = os.environ if env is None else env
    url = _account_url(params, env)
    mode = resolve_auth_mode(params.auth, url, env)
    options = {
        "retry_policy": ExponentialRetry(
            initial_backoff=params.retry_backoff_s,
            increment_base=params.retry_backoff_base,
            retry_total=params.retries,
            random_jitter_range=params.retry_jitter_s,
        ),
        "connection_timeout": params.connect_timeout_s,
        "read_timeout": params.read_timeout_s,
    }
    try:
        if mode == "connection_string":
            conn = env.get(ENV_CONNECTION_STRING)
            if not conn:
                raise AzureConfigError(f"azure.auth=connection_string but {ENV_CONNECTION_STRING} is not set")
            return BlobServiceClient.from_connection_string(conn, **options)
        if not url:
            raise AzureConfigError(f"azure.auth={mode} needs {ENV_ACCOUNT_URL} or params azure.account_url")
        if mode == "account_key":
            key = env.get(ENV_ACCOUNT_KEY)
            if not key:
                raise AzureConfigError(f"azure.auth=account_key but {ENV_ACCOUNT_KEY} is not set")
            name = env.get(ENV_ACCOUNT_NAME) or account_name_from_url(url)
            return BlobServiceClient(url, credential={"account_name": name, "account_key": key}, **options)
        if mode == "sas":
            sas = env.get(ENV_SAS_TOKEN)
            if not sas:
                raise AzureConfigError(f"azure.auth=sas but {ENV_SAS_TOKEN} is not set")
            from azure.core.credentials import AzureSasCredential

            return BlobServiceClient(url, credential=AzureSasCredential(sas.lstrip("?")), **options)
        from azure.identity import DefaultAzureCredential

        return BlobServiceClient(url, credential=DefaultAzureCredential(), **options)
    except AzureConfigError:
        raise
    except (ValueError, TypeError) as exc:
        raise AzureConfigError(f"invalid Azure {mode} configuration: {redact(str(exc), known_secrets(env))}") from None
