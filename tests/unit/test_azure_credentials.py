"""Credential selection and redaction: the right client per mode, and no secret in any message."""

from __future__ import annotations

import logging

import pytest

from defectflow.azure.credentials import (
    AzureConfigError,
    RedactingFilter,
    account_name_from_url,
    blob_service_client,
    known_secrets,
    redact,
    resolve_auth_mode,
)
from defectflow.params import AzureParams

KEY = "c2VjcmV0LWtleS10aGF0LW11c3Qtbm90LWxlYWstYW55d2hlcmUtZXZlcg=="
SAS = "sv=2025-01-05&se=2030-01-01T00%3A00%3A00Z&sr=c&sp=rl&sig=AbCdEfGh1234%2BslashY%3D"
URL = "https://plantdata.blob.core.windows.net"
CONN = f"DefaultEndpointsProtocol=https;AccountName=plantdata;AccountKey={KEY};EndpointSuffix=core.windows.net"


@pytest.mark.parametrize("env, url, expected", [
    ({"AZURE_STORAGE_CONNECTION_STRING": CONN, "AZURE_STORAGE_KEY": KEY}, URL, "connection_string"),
    ({"AZURE_STORAGE_KEY": KEY, "AZURE_STORAGE_SAS_TOKEN": SAS}, URL, "account_key"),
    ({"AZURE_STORAGE_SAS_TOKEN": SAS}, URL, "sas"),
    ({}, URL, "default"),
])
def test_auto_picks_the_first_configured_mode(env, url, expected):
    assert resolve_auth_mode("auto", url, env) == expected


def test_nothing_configured_says_which_variables_to_set():
    with pytest.raises(AzureConfigError, match="AZURE_STORAGE_CONNECTION_STRING"):
        resolve_auth_mode("auto", None, {})
    with pytest.raises(AzureConfigError, match="must be one of"):
        resolve_auth_mode("password", URL, {})


def test_each_mode_builds_the_matching_credential():
    params = AzureParams(account_url=URL, retries=2)
    by_key = blob_service_client(AzureParams(account_url=URL, auth="account_key"), {"AZURE_STORAGE_KEY": KEY})
    assert by_key.credential.account_name == "plantdata" and by_key.url.startswith(URL)
    by_sas = blob_service_client(AzureParams(account_url=URL, auth="sas"), {"AZURE_STORAGE_SAS_TOKEN": "?" + SAS})
    assert type(by_sas.credential).__name__ == "AzureSasCredential"
    by_conn = blob_service_client(params, {"AZURE_STORAGE_CONNECTION_STRING": CONN})
    assert by_conn.account_name == "plantdata"
    assert by_conn._config.retry_policy.total_retries == 2
    managed = blob_service_client(params, {})
    assert type(managed.credential).__name__ == "DefaultAzureCredential"


def test_a_sas_pasted_into_the_account_url_is_refused_without_echoing_it():
    with pytest.raises(AzureConfigError) as err:
        blob_service_client(AzureParams(account_url=f"{URL}?{SAS}"), {})
    assert "AZURE_STORAGE_SAS_TOKEN" in str(err.value) and "sig=" not in str(err.value)


def test_malformed_connection_string_error_does_not_quote_the_key():
    with pytest.raises(AzureConfigError) as err:
        blob_service_client(AzureParams(), {"AZURE_STORAGE_CONNECTION_STRING": f"AccountKey={KEY};nonsense"})
    assert KEY not in str(err.value)


def test_missing_secret_for_an_explicit_mode_names_the_variable():
    with pytest.raises(AzureConfigError, match="AZURE_STORAGE_KEY"):
        blob_service_client(AzureParams(account_url=URL, auth="account_key"), {})


def test_account_name_from_cloud_and_emulator_urls():
    assert account_name_from_url(URL) == "plantdata"
    assert account_name_from_url("http://127.0.0.1:10000/devstoreaccount1") == "devstoreaccount1"
    with pytest.raises(AzureConfigError, match="AZURE_STORAGE_ACCOUNT"):
        account_name_from_url("http://127.0.0.1:10000")


def test_redact_removes_known_values_in_every_encoding_and_secret_fields():
    env = {"AZURE_STORAGE_CONNECTION_STRING": CONN, "AZURE_STORAGE_SAS_TOKEN": SAS}
    secrets = known_secrets(env)
    assert KEY in secrets and "AbCdEfGh1234+slashY=" in secrets
    text = f"conn={CONN} url={URL}/c/b.png?{SAS} quoted={KEY.replace('=', '%3D')}"
    cleaned = redact(text, secrets)
    assert KEY not in cleaned and "AbCdEfGh1234" not in cleaned and "c2VjcmV0" not in cleaned
    assert "plantdata" in cleaned  # non-secret context survives
    # Fields that look secret are removed even when the value was never configured here.
    assert redact("x AccountKey=zzz; y ?sv=1&sig=qqq&sp=r", []) == "x AccountKey=***; y ?sv=1&sig=***&sp=r"


def test_logging_filter_redacts_formatted_records(monkeypatch):
    monkeypatch.setenv("AZURE_STORAGE_KEY", KEY)
    record = logging.LogRecord("azure", logging.DEBUG, __file__, 1, "header %s", (KEY,), None)
    RedactingFilter().filter(record)
    assert KEY not in record.getMessage() and "***" in record.getMessage()
