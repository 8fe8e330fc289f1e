"""Pattern detectors of personal data: what each finds, exact spans, and the hard negatives
their validators refuse (order numbers, prices, dates, versions, hex ids)."""

from __future__ import annotations

import pytest

from stream_aimass.privacy.detectors import (
    Finding,
    detect,
    entropy,
    iban_valid,
    luhn,
    resolve_overlaps,
)

IPV6 = "2001:db8:85a3::8a2e:370:7334"
GITHUB = "ghp_abcdefghijklmnopqrstuvwxyz0123456789"
RANDOM_KEY = "Zx9Qm2LpT7vR4sW8yB1nC6dF3hJ5kG0a"


def found(text: str, region: str = "US") -> list[tuple[str, str]]:
    return [(f.type, text[f.start : f.end]) for f in detect(text, region)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Write to jane.doe+news@example.co.uk today.", [("EMAIL", "jane.doe+news@example.co.uk")]),
        ("Call +1 415-555-0132 or (212) 555-0199.",
         [("PHONE", "+1 415-555-0132"), ("PHONE", "(212) 555-0199")]),
        ("Ring me on 020 7946 0958.", []),  # a UK number, read as a US one: not valid there
        ("My card is 4111 1111 1111 1111, exp 09/29.", [("CARD", "4111 1111 1111 1111")]),
        ("Amex 3782-822463-10005 was charged.", [("CARD", "3782-822463-10005")]),
        ("Pay to DE89 3704 0044 0532 0130 00 please.", [("IBAN", "DE89 3704 0044 0532 0130 00")]),
        ("IBAN GB29NWBK60161331926819.", [("IBAN", "GB29NWBK60161331926819")]),
        ("The server at 192.168.10.24 answered.", [("IP_ADDRESS", "192.168.10.24")]),
        (f"From {IPV6} again.", [("IP_ADDRESS", IPV6)]),
        ("My SSN is 536-22-8726.", [("US_SSN", "536-22-8726")]),
        ("ssn 536228726 on file", [("US_SSN", "536228726")]),
        ("key AKIAIOSFODNN7EXAMPLE leaked", [("SECRET", "AKIAIOSFODNN7EXAMPLE")]),
        (f"token={GITHUB}", [("SECRET", GITHUB)]),
        (f"api_key: {RANDOM_KEY}", [("SECRET", RANDOM_KEY)]),
    ],
)  # fmt: skip
def test_finds_each_type_with_its_exact_span(text: str, expected: list[tuple[str, str]]) -> None:
    assert found(text) == expected


def test_a_uk_number_is_found_with_the_uk_region() -> None:
    assert found("Ring me on 020 7946 0958.", region="GB") == [("PHONE", "020 7946 0958")]


@pytest.mark.parametrize(
    "text",
    [
        "Your order 4111 1111 1111 1111 has shipped.",  # Luhn-valid, but an order number
        "Tracking number 4012888888881881.",
        "It costs $1 415 555 0132 in total.",  # a price, not a phone number
        "Revenue was 2,415,550,132 dollars.",
        "Released v1.2.3.4 and version 10.0.0.1 today.",  # versions, not addresses
        "Meet at 12:30:45 on 2026-12-07.",  # a time and a date
        "Commit 9f86d081884c7d659a2feaa0c55ad015 merged.",  # a hex id with no key word
        "Invoice 000-12-3456 and 666-45-6789 and 912-34-5678.",  # never-issued SSNs
        "Order 536228726 shipped.",  # nine digits without the word SSN
        "1234 5678 9012 3456 is not Luhn-valid.",
        "DE89 3704 0044 0532 0130 01 fails mod-97.",
        "999.1.1.1 is no address.",
        "The rate was 4.5% on 12/05/2026.",
    ],
)
def test_hard_negatives_are_not_personal_data(text: str) -> None:
    assert found(text) == []


def test_validators() -> None:
    assert luhn("4111111111111111") and not luhn("4111111111111112")
    assert iban_valid("GB29NWBK60161331926819") and not iban_valid("GB29NWBK60161331926818")
    assert not iban_valid("XX29NWBK60161331926819")
    assert entropy("aaaa") == 0 and entropy("abcd") == 2


def test_overlaps_keep_the_stronger_finding() -> None:
    weak, strong = Finding("A", 0, 10, "x", 0.5), Finding("B", 5, 12, "y", 0.9)
    apart = Finding("C", 20, 25, "z", 0.1)
    assert resolve_overlaps([weak, apart, strong]) == [strong, apart]


def test_offsets_index_the_original_text() -> None:
    text = "Zürich: mail ana@example.org, IP 10.0.0.7."
    for f in detect(text):
        assert text[f.start : f.end] in ("ana@example.org", "10.0.0.7")
        assert f.to_dict()["type"] == f.type
