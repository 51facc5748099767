"""Private data in a request: contact details, payment and bank numbers, national identifiers,
credentials, and the terms and patterns a user declares private.

A finding names only what kind of thing was found and where; the matched text itself is never
logged, stored or returned, so that the profile of a request can be shown (`/api/route`) without
repeating the secret it found. Every message is scanned, not just the last turn: an earlier turn
travels to the model as well.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from localforge.errors import BadRequest
from localforge.inference import Inference
from localforge.profile import checksums
from localforge.profile.base import Profile


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str  # "email", "phone", "card", "iban", "national_id", "api_key", "private_key", ...
    start: int
    end: int


_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
                    r"\.[A-Za-z]{2,24}\b")
_PHONES = [
    # international: +CC then groups, 8-15 digits in all (E.164)
    re.compile(r"(?<![\w+])\+\d{1,3}(?:[\s.-]?\(?\d{1,5}\)?){2,6}(?!\d)"),
    # North American: (415) 555-0132, 415-555-0132, 415.555.0132
    re.compile(r"(?<![\w-])(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?![\w-])"),
    # national numbers with a trunk 0: 020 7946 0958, 06-12345678, 030 1234567
    re.compile(r"(?<![\w-])0\d{1,4}[\s-]\d{3,4}[\s-]?\d{3,4}(?![\w-])"),
]
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){11,18}(?![\d-])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_SSN = re.compile(r"(?<![\d-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\d-])")
_SSN_LABELLED = re.compile(r"(?i)\b(?:ssn|social security(?: number| no\.?)?)\W{0,3}(\d{3})(\d{2})(\d{4})\b")
_NINO = re.compile(r"\b[A-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b")
_DNI = re.compile(r"\b(\d{8})-?([A-Z])\b")
_PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
_API_KEYS = [
    re.compile(r"\bsk-(?:[A-Za-z0-9]+-)*[A-Za-z0-9_-]{20,}"),  # OpenAI, Anthropic (sk-ant-…)
    re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA)[A-Z0-9]{16}\b"),  # AWS key ids
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),  # GitHub tokens
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,}\b"),
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),  # Slack
    re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),  # Google API keys
    re.compile(r"\b[rs]k_(?:live|test)_[0-9A-Za-z]{16,}\b"),  # Stripe
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),  # JWTs
]
# a secret that has no known prefix shows itself by where it stands and by looking random
_LABELLED_SECRET = re.compile(
    r"(?i)(?:\bbearer\s+|\b(?:api[_-]?key|secret|token|passw(?:or)?d|access[_-]?key)\b[\"']?\s*[:=]\s*[\"']?)"
    r"([A-Za-z0-9._~+/=-]{16,})")
MIN_SECRET_ENTROPY = 3.5  # bits per character; English words score ~2.5-3, random base64 ~5-6


def entropy(text: str) -> float:
    """Shannon entropy of the characters of `text`, in bits per character."""
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values()) if n else 0.0


def _phones(text: str) -> Iterable[Finding]:
    for pattern in _PHONES:
        for m in pattern.finditer(text):
            digits = sum(ch.isdigit() for ch in m.group())
            if 8 <= digits <= 15 and not checksums.is_card_number(re.sub(r"\D", "", m.group())):
                yield Finding("phone", m.start(), m.end())


def _national_ids(text: str) -> Iterable[Finding]:
    for m in _SSN.finditer(text):
        if checksums.is_us_ssn(m.group(1), m.group(3), m.group(4)):
            yield Finding("national_id", m.start(), m.end())
    for m in _SSN_LABELLED.finditer(text):
        if checksums.is_us_ssn(m.group(1), m.group(2), m.group(3)):
            yield Finding("national_id", m.start(1), m.end(3))
    for m in _NINO.finditer(text):
        if checksums.is_uk_nino(m.group()):
            yield Finding("national_id", m.start(), m.end())
    for m in _DNI.finditer(text):
        if checksums.is_es_dni(m.group(1), m.group(2)):
            yield Finding("national_id", m.start(), m.end())


def _credentials(text: str) -> Iterable[Finding]:
    for m in _PRIVATE_KEY.finditer(text):
        yield Finding("private_key", m.start(), m.end())
    for pattern in _API_KEYS:
        for m in pattern.finditer(text):
            yield Finding("api_key", m.start(), m.end())
    for m in _LABELLED_SECRET.finditer(text):
        if entropy(m.group(1)) >= MIN_SECRET_ENTROPY:
            yield Finding("api_key", m.start(1), m.end(1))


def builtin_findings(text: str) -> list[Finding]:
    """Everything the built-in detectors find in `text`, in order of position."""
    found = [Finding("email", m.start(), m.end()) for m in _EMAIL.finditer(text)]
    for m in _CARD.finditer(text):
        if checksums.is_card_number(re.sub(r"\D", "", m.group())):
            found.append(Finding("card", m.start(), m.end()))
    found += [Finding("iban", m.start(), m.end()) for m in _IBAN.finditer(text)
              if checksums.is_iban(m.group())]
    found += _phones(text)
    found += _national_ids(text)
    found += _credentials(text)
    return sorted(found, key=lambda f: (f.start, f.kind))


class Sensitivity:
    """The built-in detectors plus the terms (whole words, any case) and regular expressions a
    user configured; a configured pattern that does not compile is a configuration error."""

    def __init__(self, terms: Iterable[str] = (), patterns: Iterable[str] = ()) -> None:
        words = sorted({t.strip() for t in terms if t.strip()}, key=len, reverse=True)
        self.terms = (re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, words)) + r")(?!\w)",
                                 re.IGNORECASE) if words else None)
        self.patterns = []
        for pattern in patterns:
            try:
                self.patterns.append(re.compile(pattern))
            except re.error as exc:
                raise BadRequest(f"invalid sensitive pattern {pattern!r}: {exc}") from exc

    def findings(self, text: str) -> list[Finding]:
        found = builtin_findings(text)
        if self.terms is not None:
            found += [Finding("term", m.start(), m.end()) for m in self.terms.finditer(text)]
        for pattern in self.patterns:
            found += [Finding("pattern", m.start(), m.end()) for m in pattern.finditer(text)
                      if m.end() > m.start()]
        return found

    def kinds(self, text: str) -> list[str]:
        """The kinds of private data in `text`, sorted, each once."""
        return sorted({f.kind for f in self.findings(text)})


def request_texts(request: Inference) -> list[str]:
    """Every piece of text the request would send to a model."""
    texts = [request.system or "", request.prompt, request.suffix]
    for message in request.messages:
        texts.append(message.content)
        texts += [json.dumps(call.arguments) for call in message.tool_calls]
    return [t for t in texts if t]


class SensitivityProfiler:
    name = "sensitivity"

    def __init__(self, sensitivity: Sensitivity | None = None) -> None:
        self.sensitivity = sensitivity or Sensitivity()

    def profile(self, request: Inference, profile: Profile) -> None:
        kinds = {k for text in request_texts(request) for k in self.sensitivity.kinds(text)}
        profile.sensitivity = sorted(kinds)
        profile.sensitive = bool(kinds)
