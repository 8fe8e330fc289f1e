"""Per-tenant API keys: parsing AIMASS_API_KEYS and the checks on /v1/ requests."""

from __future__ import annotations

import hashlib

import pytest
from multidict import CIMultiDict
from pydantic import SecretStr

from stream_aimass.settings import Settings
from stream_aimass.web.auth import (
    NO_KEYS_CONFIGURED,
    ApiKeyAuth,
    ApiKeyConfigError,
    Denied,
    parse_api_keys,
    presented_key,
)

KEYS = '{"acme": ["acme-key-1", "acme-key-2"], "globex": "globex-key"}'


def auth() -> ApiKeyAuth:
    return ApiKeyAuth(True, parse_api_keys(KEYS))


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_keys_are_kept_as_sha256_digests_only() -> None:
    keys = parse_api_keys(KEYS)
    assert set(keys) == {"acme", "globex"}
    assert keys["acme"] == {
        hashlib.sha256(b"acme-key-1").digest(),
        hashlib.sha256(b"acme-key-2").digest(),
    }
    assert keys["globex"] == {hashlib.sha256(b"globex-key").digest()}
    shown = repr(ApiKeyAuth(True, keys))
    assert "acme-key" not in shown and "globex-key" not in shown
    assert parse_api_keys("") == {} and parse_api_keys("  ") == {}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"acme": "s3cr3t-value",}', "not valid JSON"),
        ('{"acme": "s3cr3t-value"', "not valid JSON"),
        ('["s3cr3t-value"]', "must be a JSON object"),
        ('"s3cr3t-value"', "must be a JSON object"),
        ('{"bad tenant!": "s3cr3t-value"}', "must match"),
        ('{"acme": []}', "non-empty list"),
        ('{"acme": {"k": "s3cr3t-value"}}', "non-empty list"),
        ('{"acme": ["s3cr3t-value", 7]}', "key #2 of tenant 'acme'"),
        ('{"acme": ""}', "key #1 of tenant 'acme'"),
        ('{"acme": "s3cr3t value"}', "without spaces"),
        ('{"acme": "s3cr3t-value", "globex": ["x-key", "s3cr3t-value"]}', "also a key of"),
    ],
)
def test_unusable_keys_are_a_clear_error_that_never_echoes_a_key(raw: str, expected: str) -> None:
    with pytest.raises(ApiKeyConfigError) as err:
        parse_api_keys(raw)
    message = str(err.value)
    assert expected in message
    assert "AIMASS_API_KEYS" in message
    assert "s3cr3t" not in message, message


def test_auth_off_ignores_keys_even_unusable_ones() -> None:
    off = ApiKeyAuth.from_settings(
        Settings(api_auth_enabled=False, api_keys=SecretStr("{not json"))
    )
    assert not off.enabled
    assert off.check({}, "acme") is None and off.check({}, None) is None


def test_auth_on_parses_the_settings_once() -> None:
    on = ApiKeyAuth.from_settings(Settings(api_auth_enabled=True, api_keys=SecretStr(KEYS)))
    assert on.enabled and on.tenants() == ["acme", "globex"]
    assert on.check(bearer("acme-key-2"), "acme") is None
    with pytest.raises(ApiKeyConfigError):
        ApiKeyAuth.from_settings(Settings(api_keys=SecretStr('{"acme": 1}')))


def test_the_key_comes_from_bearer_or_x_api_key_case_insensitively() -> None:
    assert presented_key({"Authorization": "Bearer abc"}) == "abc"
    assert presented_key({"authorization": "bearer  abc "}) == "abc"
    assert presented_key({"X-API-Key": "abc"}) == "abc"
    assert presented_key({"x-api-key": " abc"}) == "abc"
    assert presented_key(CIMultiDict({"X-Api-Key": "abc"})) == "abc"
    # Bearer wins over X-API-Key; another scheme is no key.
    assert presented_key({"Authorization": "Bearer one", "X-API-Key": "two"}) == "one"
    assert presented_key({"Authorization": "Basic dXNlcjpwdw=="}) is None
    assert presented_key({"Authorization": "Basic x", "X-API-Key": "two"}) == "two"
    assert presented_key({"Authorization": "Bearer "}) is None
    assert presented_key({}) is None


def test_a_tenant_endpoint_needs_a_key_of_that_tenant() -> None:
    a = auth()
    assert a.check(bearer("acme-key-1"), "acme") is None
    assert a.check({"X-API-Key": "acme-key-2"}, "acme") is None
    assert a.check(bearer("globex-key"), "globex") is None

    missing = a.check({}, "acme")
    assert missing is not None and missing.status == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert "Authorization: Bearer KEY" in missing.body["error"]

    other = a.check(bearer("globex-key"), "acme")
    unknown = a.check(bearer("no-such-key"), "acme")
    assert other is not None and unknown is not None
    assert other.status == unknown.status == 403
    # The same answer either way: it never says whose key it is.
    assert other.body == unknown.body and "globex" not in str(other.body)
    assert a.check(bearer("acme-key-1"), "globex") is not None
    assert a.check(bearer("acme-key-1"), "ACME") is not None, "tenant ids are case-sensitive"
    assert a.check(bearer("acme-key-1"), "initech") is not None, "a tenant without keys"


def test_models_needs_any_valid_key() -> None:
    a = auth()
    assert a.check(bearer("acme-key-1"), None) is None
    assert a.check({"X-API-Key": "globex-key"}, None) is None
    missing = a.check({}, None)
    assert missing is not None and missing.status == 401
    unknown = a.check(bearer("acme-key-3"), None)
    assert unknown is not None and unknown.status == 403


def test_auth_on_without_keys_refuses_everything_and_says_how_to_fix_it() -> None:
    a = ApiKeyAuth.from_settings(Settings(api_auth_enabled=True, api_keys=SecretStr("")))
    assert a.misconfigured
    for tenant in ("acme", None):
        denied = a.check(bearer("anything"), tenant)
        assert denied is not None and denied.status == 401
        assert denied.body["error"] == NO_KEYS_CONFIGURED
        assert denied.headers["WWW-Authenticate"].startswith("Bearer")
    assert "AIMASS_API_KEYS" in NO_KEYS_CONFIGURED
    assert "AIMASS_API_AUTH_ENABLED=false" in NO_KEYS_CONFIGURED
    assert not auth().misconfigured and not ApiKeyAuth(False).misconfigured


def admin_auth() -> ApiKeyAuth:
    settings = Settings(
        api_keys=SecretStr(KEYS), api_admin_key=SecretStr("the-admin-key"), api_auth_enabled=True
    )
    return ApiKeyAuth.from_settings(settings)


def test_callers_are_a_tenant_or_the_admin() -> None:
    checks = admin_auth()
    tenant = checks.caller(bearer("acme-key-2"))
    assert not isinstance(tenant, Denied) and (tenant.tenant, tenant.admin) == ("acme", False)
    admin = checks.caller({"X-API-Key": "the-admin-key"})
    assert not isinstance(admin, Denied) and (admin.tenant, admin.admin) == (None, True)
    unknown = checks.caller(bearer("nope"))
    assert isinstance(unknown, Denied) and unknown.status == 403
    missing = checks.caller({})
    assert isinstance(missing, Denied) and missing.status == 401
    off = ApiKeyAuth(False).caller({})
    assert not isinstance(off, Denied) and off.admin


def test_admin_operations_need_the_admin_key_which_passes_every_tenant_check() -> None:
    checks = admin_auth()
    assert checks.check_admin(bearer("the-admin-key")) is None
    denied = checks.check_admin(bearer("acme-key-1"))
    assert (
        denied is not None
        and denied.status == 403
        and "AIMASS_API_ADMIN_KEY" in denied.body["error"]
    )
    assert checks.check(bearer("the-admin-key"), "globex") is None
    assert checks.check(bearer("the-admin-key"), None) is None
    assert ApiKeyAuth(True, parse_api_keys(KEYS)).check_admin(bearer("the-admin-key")) is not None


def test_an_admin_key_that_is_also_a_tenants_key_is_refused() -> None:
    with pytest.raises(ApiKeyConfigError, match="also a tenant's key"):
        ApiKeyAuth.from_settings(
            Settings(api_keys=SecretStr(KEYS), api_admin_key=SecretStr("globex-key"))
        )
    only_admin = ApiKeyAuth.from_settings(Settings(api_admin_key=SecretStr("k")))
    assert not only_admin.misconfigured
