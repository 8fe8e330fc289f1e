"""The PII policy: its forms, the layering of tenants and types, bad policies refused with
the reason, and the hot-reloaded file (a bad file keeps the policy in force)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream_aimass.privacy.policy import (
    TYPES,
    Policy,
    PolicyError,
    PolicySource,
    parse_policy,
    write_policy_file,
)


def test_one_action_applies_to_every_type_and_tenant() -> None:
    policy = parse_policy("redact")
    for tenant in ("acme", "globex", ""):
        assert {policy.for_tenant(tenant).action(t) for t in TYPES} == {"redact"}
    assert policy.active and not policy.hashes


def test_keep_looks_for_nothing() -> None:
    policy = parse_policy("keep")
    assert not policy.active
    assert policy.for_tenant("acme").looked_for() == frozenset()


def test_tenants_and_types_layer_over_the_star_tenant() -> None:
    policy = parse_policy(
        '{"*": "redact", "acme": {"email": "hash", "PERSON": "detect"}, "lab": "keep",'
        ' "beta": {"*": "mask", "CARD": "redact"}}'
    )
    acme = policy.for_tenant("acme")
    assert acme.action("EMAIL") == "hash"  # type names are case-insensitive
    assert acme.action("PERSON") == "detect"
    assert acme.action("PHONE") == "redact"  # not named: the * tenant's
    assert not policy.for_tenant("lab").active
    beta = policy.for_tenant("beta")
    assert (beta.action("CARD"), beta.action("EMAIL")) == ("redact", "mask")
    assert policy.for_tenant("someone-else").action("IBAN") == "redact"
    assert policy.hashes


def test_without_a_star_tenant_the_others_keep() -> None:
    policy = parse_policy({"acme": "redact"})
    assert policy.for_tenant("acme").active
    assert not policy.for_tenant("globex").active


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("obliterate", "'obliterate' is not an action"),
        ('{"*": "redact", "acme": {"NAME": "redact"}}', "'NAME' is not a type"),
        ('{"acme": {"EMAIL": "shred"}}', "acme.EMAIL: 'shred' is not an action"),
        ('{"acme": 3}', "acme: expected an action or an object"),
        ("{not json", "not valid JSON"),
    ],
)
def test_a_bad_policy_is_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(PolicyError, match=reason):
        parse_policy(text)


def test_the_version_names_the_policy_not_its_spelling() -> None:
    a = parse_policy('{"*": "redact", "acme": {"EMAIL": "hash"}}')
    b = parse_policy('{"acme": {"email": "HASH"}, "*": "redact"}')
    assert a.version == b.version
    assert parse_policy("redact").version != parse_policy("mask").version


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_file_wins_and_is_reloaded_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "pii_policy.json"
    clock = Clock()
    outcomes: list[str] = []
    source = PolicySource("keep", path, 2.0, on_reload=outcomes.append, clock=clock)
    assert not source.current().active  # no file: the setting

    write_policy_file(path, {"*": "redact"})
    clock.now = 1.0
    assert not source.current().active  # not looked at again before the interval
    clock.now = 2.5
    assert source.current().for_tenant("x").action("EMAIL") == "redact"

    path.write_text('{"*": "blur"}')  # a bad file: logged, counted, the policy stays
    clock.now = 5.0
    assert source.current().for_tenant("x").action("EMAIL") == "redact"

    path.unlink()  # no file: back to the setting
    clock.now = 8.0
    assert not source.current().active
    assert outcomes == ["swapped", "failed", "swapped"]


def test_check_refuses_a_policy_at_the_start_and_on_reload(tmp_path: Path) -> None:
    def no_hash(policy: Policy) -> None:
        if policy.hashes:
            raise PolicyError("the hash action needs a key")

    with pytest.raises(PolicyError, match="needs a key"):
        PolicySource("hash", None, 0, check=no_hash)
    path = tmp_path / "p.json"
    clock = Clock()
    source = PolicySource("redact", path, 1.0, check=no_hash, clock=clock)
    path.write_text(json.dumps({"*": "hash"}))
    clock.now = 2.0
    assert source.current().for_tenant("x").action("EMAIL") == "redact"


def test_write_policy_file_refuses_what_would_not_load(tmp_path: Path) -> None:
    with pytest.raises(PolicyError):
        write_policy_file(tmp_path / "p.json", {"*": "nope"})
    assert not (tmp_path / "p.json").exists()
