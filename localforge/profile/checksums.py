"""The checksums and number-range rules that tell a real identifier from a look-alike.

A 16-digit run is a payment card only if its prefix belongs to a card network and its Luhn
digit checks; a string shaped like an IBAN is one only if its length fits its country and its
mod-97 remainder is 1. Without these checks an order number or a tracking code would mark a
request as private and keep it off remote models for no reason.
"""

from __future__ import annotations

import re

# ISO 13616 lengths of the IBANs in use (SWIFT IBAN registry); unknown countries allow 15-34
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}

# IIN ranges of the card networks (ISO/IEC 7812): prefix pattern and allowed lengths
_CARD_NETWORKS = [
    (re.compile(r"^4"), (13, 16, 19)),  # Visa
    (re.compile(r"^(5[1-5]|222[1-9]|22[3-9]\d|2[3-6]\d\d|27[01]\d|2720)"), (16,)),  # Mastercard
    (re.compile(r"^3[47]"), (15,)),  # American Express
    (re.compile(r"^(6011|65|64[4-9])"), (16, 19)),  # Discover
    (re.compile(r"^35(2[89]|[3-8]\d)"), (16, 19)),  # JCB
    (re.compile(r"^(30[0-5]|36|38|39)"), (14, 16, 19)),  # Diners Club
    (re.compile(r"^62"), (16, 17, 18, 19)),  # UnionPay
    (re.compile(r"^(5[06-9]|6\d)"), (12, 13, 14, 15, 16, 17, 18, 19)),  # Maestro
]


def luhn(digits: str) -> bool:
    """The Luhn mod-10 check over a string of digits."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def is_card_number(digits: str) -> bool:
    """A network's prefix and length, and a Luhn digit that checks."""
    if not digits.isdigit() or len(set(digits)) == 1:
        return False
    return luhn(digits) and any(prefix.match(digits) and len(digits) in lengths
                                for prefix, lengths in _CARD_NETWORKS)


def is_iban(text: str) -> bool:
    """ISO 13616: the country's length, and mod 97 of the rearranged number equal to 1."""
    iban = text.replace(" ", "").upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", iban):
        return False
    expected = IBAN_LENGTHS.get(iban[:2])
    if expected is not None and len(iban) != expected:
        return False
    rearranged = iban[4:] + iban[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


def is_us_ssn(area: str, group: str, serial: str) -> bool:
    """SSA rules: no area 000, 666 or 900-999, no group 00, no serial 0000, no advertised samples."""
    if area in ("000", "666") or area >= "900" or group == "00" or serial == "0000":
        return False
    return f"{area}{group}{serial}" not in ("078051120", "219099999", "123456789")


_NINO_BAD_PREFIX = {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}


def is_uk_nino(text: str) -> bool:
    """HMRC's rules: letters D, F, I, Q, U, V never used; O not second; some prefixes never issued."""
    nino = text.replace(" ", "").upper()
    if not re.fullmatch(r"[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]\d{6}[A-D]", nino):
        return False
    return nino[:2] not in _NINO_BAD_PREFIX


_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def is_es_dni(number: str, letter: str) -> bool:
    """Spain's DNI: the letter is the number mod 23 looked up in a fixed table."""
    return number.isdigit() and _DNI_LETTERS[int(number) % 23] == letter.upper()
