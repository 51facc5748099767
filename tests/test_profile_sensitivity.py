"""Private data is found by kind, with checksums separating real numbers from look-alikes."""

from __future__ import annotations

import pytest

from localforge.errors import BadRequest
from localforge.inference import Inference, Message
from localforge.profile.base import Profile
from localforge.profile.checksums import is_card_number, is_iban, is_uk_nino, is_us_ssn, luhn
from localforge.profile.sensitivity import Sensitivity, SensitivityProfiler, builtin_findings, entropy


def kinds(text: str) -> set[str]:
    return {f.kind for f in builtin_findings(text)}


@pytest.mark.parametrize("number", ["4111 1111 1111 1111", "4111-1111-1111-1111", "5500005555555559",
                                    "378282246310005", "6011111111111117", "3530111333300000",
                                    "2223000048400011"])
def test_checksum_valid_card_numbers_are_cards(number: str) -> None:
    assert kinds(f"please charge {number} today") == {"card"}


@pytest.mark.parametrize("number", ["4111 1111 1111 1112", "5500005555555550", "378282246310006",
                                    "1234 5678 9012 3456", "0000 0000 0000 0000"])
def test_checksum_invalid_or_unknown_network_numbers_are_not_cards(number: str) -> None:
    assert "card" not in kinds(f"order number {number}")


def test_luhn_by_hand() -> None:
    assert luhn("79927398713") and not luhn("79927398710")
    assert is_card_number("4012888888881881") and not is_card_number("4012888888881882")


@pytest.mark.parametrize("iban", ["GB82 WEST 1234 5698 7654 32", "DE89370400440532013000",
                                  "FR1420041010050500013M02606", "NL91ABNA0417164300"])
def test_checksum_valid_ibans(iban: str) -> None:
    assert is_iban(iban)
    assert "iban" in kinds(f"wire it to {iban} please")


@pytest.mark.parametrize("iban", ["GB82 WEST 1234 5698 7654 33", "DE89370400440532013001",
                                  "DE8937040044053201300", "XX00 1234 5678 9012 34"])
def test_checksum_invalid_ibans(iban: str) -> None:
    assert not is_iban(iban)
    assert "iban" not in kinds(f"reference {iban}")


def test_us_ssn_range_rules() -> None:
    assert is_us_ssn("123", "45", "6780")
    for area, group, serial in [("000", "12", "3456"), ("666", "12", "3456"), ("912", "12", "3456"),
                                ("123", "00", "4567"), ("123", "45", "0000"), ("078", "05", "1120")]:
        assert not is_us_ssn(area, group, serial)
    assert kinds("my SSN is 123-45-6780") == {"national_id"}
    assert "national_id" not in kinds("my SSN is 666-45-6780")
    assert kinds("SSN: 123456780") == {"national_id"}


def test_uk_nino_and_spanish_dni() -> None:
    assert is_uk_nino("AB 12 34 56 C") and not is_uk_nino("GB 12 34 56 C") and not is_uk_nino("DA123456C")
    assert kinds("NI number QQ123456C") == set()  # Q is never a NINO letter
    assert kinds("NI number AB123456C") == {"national_id"}
    assert kinds("DNI 12345678Z") == {"national_id"}  # 12345678 mod 23 = 14 -> Z
    assert kinds("DNI 12345678A") == set()


def test_contact_details() -> None:
    assert kinds("write to jane.doe+work@example.co.uk") == {"email"}
    assert kinds("call me on +44 20 7946 0958") == {"phone"}
    assert kinds("call (415) 555-0132 or 415.555.0199") == {"phone"}
    assert kinds("the meeting is at 10:30 on 2024-05-01, room 12") == set()


@pytest.mark.parametrize("secret", [
    "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789", "sk-ant-api03-abcdefghijklmnopqrstuvwx",
    "AKIAIOSFODNN7EXAMPLE", "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    "xoxb-123456789012-abcdefghijkl", "Authorization: Bearer 9fQ2xL7vP0aZ3mK8rT1wY6uB4nC5dE",
    "api_key = 'Zx81LqP0vN3mT7bW2cR9'",
])
def test_credentials(secret: str) -> None:
    assert kinds(f"my config: {secret}") == {"api_key"}


def test_a_labelled_but_low_entropy_value_is_not_a_secret() -> None:
    assert kinds("password = passwordpassword") == set()
    assert entropy("aaaaaaaaaaaaaaaa") == 0.0 and entropy("9fQ2xL7vP0aZ3mK8rT1wY6uB4nC5dE") > 4


def test_private_keys() -> None:
    for header in ["-----BEGIN RSA PRIVATE KEY-----", "-----BEGIN OPENSSH PRIVATE KEY-----",
                   "-----BEGIN PRIVATE KEY-----", "-----BEGIN PGP PRIVATE KEY BLOCK-----"]:
        assert "private_key" in kinds(f"{header}\nMIIEow...\n")
    assert "private_key" not in kinds("-----BEGIN PUBLIC KEY-----")


def test_configured_terms_and_patterns() -> None:
    sensitivity = Sensitivity(terms=["Project Falcon"], patterns=[r"\bEMP-\d{6}\b"])
    assert sensitivity.kinds("status of project falcon?") == ["term"]
    assert sensitivity.kinds("projects falconry") == []
    assert sensitivity.kinds("employee EMP-123456 left") == ["pattern"]
    with pytest.raises(BadRequest, match="invalid sensitive pattern"):
        Sensitivity(patterns=["(unclosed"])


def test_profiler_scans_every_turn_and_names_kinds_not_values() -> None:
    request = Inference(model="auto", kind="chat", messages=[
        Message("user", "my card is 4111 1111 1111 1111"), Message("assistant", "noted"),
        Message("user", "what's the weather like?")])
    profile = Profile()
    SensitivityProfiler().profile(request, profile)
    assert profile.sensitive and profile.sensitivity == ["card"]
    clean = Profile()
    SensitivityProfiler().profile(Inference(model="auto", kind="generate", prompt="hello"), clean)
    assert not clean.sensitive and clean.sensitivity == []
