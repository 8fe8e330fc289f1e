"""The SQL of per-tenant read users: every tenant table covered, quoting, injections refused."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stream_aimass.cli.main import app
from stream_aimass.clickhouse.tenants import (
    ALL_TENANTS_POLICY,
    CHDB_SKIPPED,
    PASSWORD_PLACEHOLDER,
    TenantAccessError,
    password_sha256,
    quote_identifier,
    quote_string,
    render_tenant_reader,
    statements,
    template,
)

TABLES = ["documents", "events", "usage_hourly", "items"]
HASH = password_sha256("correct horse battery staple")
runner = CliRunner()


def render(tenant: str = "acme", **kwargs: object) -> str:
    return render_tenant_reader(tenant, "aimass", TABLES, password_hash=HASH, **kwargs)  # type: ignore[arg-type]


def test_every_table_gets_a_grant_and_three_select_policies() -> None:
    sql = statements(render())
    assert sql[:4] == [
        "CREATE ROLE IF NOT EXISTS `aimass_tenant_acme`",
        f"CREATE USER OR REPLACE `aimass_reader_acme` IDENTIFIED WITH sha256_hash BY '{HASH}' "
        "SETTINGS readonly = 2",
        "GRANT `aimass_tenant_acme` TO `aimass_reader_acme`",
        "SET DEFAULT ROLE `aimass_tenant_acme` TO `aimass_reader_acme`",
    ]
    assert len(sql) == 4 + 4 * len(TABLES)
    for table in TABLES:
        on = f"ON `aimass`.`{table}` FOR SELECT"
        mine = [s for s in sql if f"`aimass`.`{table}`" in s]
        assert mine == [
            # The catch-all first (other users never lose rows), the grant last.
            f"CREATE ROW POLICY IF NOT EXISTS `{ALL_TENANTS_POLICY}` {on} USING 1 AS PERMISSIVE "
            "TO ALL",
            f"CREATE ROW POLICY OR REPLACE `aimass_tenant_acme` {on} USING tenant = 'acme' "
            "AS PERMISSIVE TO `aimass_tenant_acme`",
            f"CREATE ROW POLICY OR REPLACE `aimass_tenant_acme_only` {on} USING tenant = 'acme' "
            "AS RESTRICTIVE TO `aimass_tenant_acme`",
            f"GRANT SELECT ON `aimass`.`{table}` TO `aimass_tenant_acme`",
        ]
    # Nothing is granted but the listed tables, and nothing database-wide.
    grants = [s for s in sql if s.startswith("GRANT SELECT")]
    assert len(grants) == len(TABLES) and not any("`aimass`.*" in s for s in sql)


def test_the_user_name_and_tenant_ids_with_dots_and_dashes_are_quoted() -> None:
    sql = render("eu.acme-2", user="acme_bi")
    assert "CREATE USER OR REPLACE `acme_bi`" in sql
    assert "GRANT `aimass_tenant_eu.acme-2` TO `acme_bi`" in sql
    assert "USING tenant = 'eu.acme-2' AS RESTRICTIVE TO `aimass_tenant_eu.acme-2`" in sql
    assert "`aimass_tenant_eu.acme-2_only`" in sql


def test_the_password_goes_in_as_its_sha256_only() -> None:
    password = "correct horse battery staple"
    assert hashlib.sha256(password.encode()).hexdigest() == HASH
    assert password not in render()
    unset = render_tenant_reader("acme", "aimass", TABLES)
    assert PASSWORD_PLACEHOLDER in unset
    # The placeholder is no SHA-256: a server refuses it rather than set a known password.
    assert not re.fullmatch(r"[0-9a-f]{64}", PASSWORD_PLACEHOLDER)
    with pytest.raises(TenantAccessError):
        render_tenant_reader("acme", "aimass", TABLES, password_hash="'; DROP USER default; --")
    with pytest.raises(TenantAccessError):
        password_sha256("")


def test_quoting_escapes_quotes_and_backslashes() -> None:
    assert quote_identifier("a`b\\c") == "`a\\`b\\\\c`"
    assert quote_string("it's\\") == "'it\\'s\\\\'"
    for bad in ("a\nb", "a\x00b"):
        with pytest.raises(TenantAccessError):
            quote_identifier(bad)
        with pytest.raises(TenantAccessError):
            quote_string(bad)
    with pytest.raises(TenantAccessError):
        quote_identifier("")


@pytest.mark.parametrize(
    "tenant",
    [
        "acme'; DROP TABLE documents; --",
        "acme' OR 1 --",
        "acme`",
        "ac me",
        "acme\n",
        "acme;",
        "",
        "x" * 129,
        "acmé",
    ],
)
def test_tenant_injection_attempts_are_refused(tenant: str) -> None:
    with pytest.raises(TenantAccessError, match="tenant"):
        render(tenant)


@pytest.mark.parametrize("user", ["bob'--", "`x`", "a b", "x;DROP", "", "-lead", "é"])
def test_bad_user_names_are_refused(user: str) -> None:
    with pytest.raises(TenantAccessError, match="user name"):
        render(user=user)


@pytest.mark.parametrize("database", ["aimass; DROP", "a`b", "", "db name"])
def test_bad_database_names_are_refused(database: str) -> None:
    with pytest.raises(TenantAccessError, match="database"):
        render_tenant_reader("acme", database, TABLES)


def test_no_table_with_a_tenant_column_is_an_error() -> None:
    with pytest.raises(TenantAccessError, match="no table with a tenant column"):
        render_tenant_reader("acme", "aimass", [])


def test_the_bundled_template_uses_known_placeholders_only() -> None:
    text = template()
    code = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    assert set(re.findall(r"\{([a-z_0-9]+)\}", code)) == {
        "database", "tenant", "role", "user", "password_sha256", "policy", "only_policy",
        "all_tenants", "table",
    }  # fmt: skip
    with pytest.raises(TenantAccessError, match="unknown placeholder"):
        render_tenant_reader("acme", "aimass", TABLES, text=text.replace("{role};", "{rolle};", 1))
    with pytest.raises(TenantAccessError, match="@each-table"):
        render_tenant_reader("acme", "aimass", TABLES, text=text.replace("-- @end", ""))


# -- the command line (validation happens before any database is opened) ------------------


def test_cli_refuses_an_injected_tenant_before_opening_anything(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["db", "tenant-reader", "acme'; DROP USER default; --", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "must match" in result.output
    assert not (tmp_path / "clickhouse").exists()


def test_cli_refuses_a_bad_user_and_two_password_sources(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["db", "tenant-reader", "acme", "--user", "x' OR 1", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 2 and "user name" in result.output
    result = runner.invoke(
        app,
        ["db", "tenant-reader", "acme", "--password-env", "PW", "--password-stdin",
         "--data-dir", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 2 and "not both" in result.output
    result = runner.invoke(
        app,
        ["db", "tenant-reader", "acme", "--password-env", "AIMASS_TEST_UNSET_PASSWORD",
         "--data-dir", str(tmp_path)],
        env={"AIMASS_TEST_UNSET_PASSWORD": ""},
    )  # fmt: skip
    assert result.exit_code == 2 and "AIMASS_TEST_UNSET_PASSWORD" in result.output


def test_cli_on_chdb_skips_with_one_line_and_exit_0(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["db", "tenant-reader", "acme", "--data-dir", str(tmp_path)],
        env={"AIMASS_CLICKHOUSE_DSN": ""},
    )
    assert result.exit_code == 0, result.output
    assert result.stderr.strip().count("\n") == 0, "one line"
    assert CHDB_SKIPPED in result.stderr and "--print-sql" in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "clickhouse").exists(), "nothing opened"
