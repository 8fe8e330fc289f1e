-- A read-only ClickHouse user that sees one tenant's rows, on a ClickHouse server.
-- `stream-aimass db tenant-reader TENANT` fills this in and applies it (see README.md here).
--
-- Placeholders (filled in quoted: identifiers in backquotes, values in single quotes):
--   {database}         the aimass database
--   {tenant}           the tenant id, a string literal
--   {role}             aimass_tenant_<tenant>: holds the grants and the row policies
--   {user}             the login, aimass_reader_<tenant> unless --user says otherwise
--   {password_sha256}  hex SHA-256 of the password (the password itself is never sent)
--   {policy}           aimass_tenant_<tenant>: the tenant's permissive row policy
--   {only_policy}      aimass_tenant_<tenant>_only: its restrictive twin
--   {all_tenants}      aimass_all_tenants: every other user keeps seeing every row
--   {table}            each table of {database} with a `tenant` column (the block between
--                      the @each-table and @end lines is repeated for each)
--
-- Lines starting with -- are left out of the SQL that is run.

CREATE ROLE IF NOT EXISTS {role};
CREATE USER OR REPLACE {user} IDENTIFIED WITH sha256_hash BY {password_sha256} SETTINGS readonly = 2;
GRANT {role} TO {user};
SET DEFAULT ROLE {role} TO {user};

-- @each-table
-- First the catch-all, so that other users never lose the table's rows in between: once a
-- table has any row policy, a user no policy applies to reads no rows from it. IF NOT
-- EXISTS keeps an operator's narrower version of it.
CREATE ROW POLICY IF NOT EXISTS {all_tenants} ON {database}.{table} FOR SELECT USING 1 AS PERMISSIVE TO ALL;
CREATE ROW POLICY OR REPLACE {policy} ON {database}.{table} FOR SELECT USING tenant = {tenant} AS PERMISSIVE TO {role};
-- Restrictive policies are ANDed with the permissive ones (above: tenant OR 1): the role
-- reads its tenant's rows only, whatever permissive policy also applies to it.
CREATE ROW POLICY OR REPLACE {only_policy} ON {database}.{table} FOR SELECT USING tenant = {tenant} AS RESTRICTIVE TO {role};
GRANT SELECT ON {database}.{table} TO {role};
-- @end
