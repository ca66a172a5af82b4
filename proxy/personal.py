"""
Personal data in kept text (SPEC §3, class `personal`): payment cards, IBANs, e-mail
addresses, phone numbers and US social security numbers, masked wherever text is kept.

Each kind is found by a cheap pattern and then confirmed by its own rule, so that what
only looks like one stays as it is: a card is 13-19 digits (in groups joined by spaces,
dashes or dots, or spelled as digit words the way transcription writes a read-out number)
with a card network's prefix and length and a valid Luhn check; an IBAN passes mod-97 at
its country's length; a phone number is confirmed valid by the `phonenumbers` library
(international format anywhere, national format for `redaction.pii_regions`); an SSN
keeps the area, group and serial rules. Amounts, dates, times, ZIP codes, order and
tracking numbers and Luhn-invalid digit runs pass.

A find becomes `[redacted:<kind>:<fp>]`, the fingerprint keyed like every other (one
caller's card is followed across sessions without being readable; a card spelled in words
has the fingerprint of its digits), or per `redaction.pii` is kept (`keep`) or, for
cards, shows its last four digits (`last4`). Text without a digit, an `@` or a digit word
pays one cheap check.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Final, Literal

import phonenumbers

KINDS: Final = ("card", "iban", "email", "phone", "ssn")
PiiMode = Literal["mask", "keep", "last4"]

_DIGIT_WORDS: Final = {
    "zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9",
}  # fmt: skip
_WORD_PROBES: Final = (" one", " two", " three", " four", " five", " six", " seven", " eight",
                       " nine", " zero", " oh")  # fmt: skip
_CARD = re.compile(r"(?<![\d.,])\d(?:[ \-.]?\d){12,18}(?![\d]|[.,]\d)")
_SPELLED = re.compile(
    r"(?i)\b(?:(?:zero|oh|one|two|three|four|five|six|seven|eight|nine|\d{1,4})(?:[\s,\-]+|$)){13,24}"
)
_TOKEN = re.compile(r"(?i)zero|oh|one|two|three|four|five|six|seven|eight|nine|\d+")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_EMAIL = re.compile(
    r"(?<![\w.+-])[\w.+-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}\.)+[A-Za-z]{2,24}\b"
)
_SSN = re.compile(r"(?<![\d-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\d-])")
# A phone-shaped run: an optional `+` and country code, an optional area code in
# parentheses, then 6 to 14 digits in groups joined by a space, a dot or a dash.
_PHONE = re.compile(
    r"(?<![\w+/.\-])(?:\+\d{1,3}[ .\-]?)?(?:\(\d{1,5}\)[ .\-]?)?"
    r"\d(?:[ .\-]?\d){5,13}(?![\w/]|[.\-]\d)"
)
_DIGIT = re.compile(r"\d")
# Words that name a digit run as an identifier: such a run, written without any
# separator, is not taken for a phone number though it would be a valid one.
_IDENTIFIER = re.compile(
    r"(?i)\b(?:order|serial|tracking|invoice|reference|ref|ticket|confirmation|case|batch|"
    r"account|customer|member|policy|claim|id|sku|part|model|build)\b[^\d]{0,12}$"
)
# Digits (or digit words) at the very end of a stream so far, that the next delta may
# continue into a card.
_TRAILING = re.compile(
    r"(?i)(?:(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)[\s,\-]*|\d[\s\-.]?)+"
    r"[a-z]{0,4}$"  # the delta may end inside the next word
)
# The card networks' prefixes and lengths (IIN ranges, as published by the networks).
_NETWORKS: Final = (
    (re.compile(r"4"), (13, 16, 19)),  # Visa
    (re.compile(r"5[1-5]|2(?:2[2-9][1-9]|2[3-9]|[3-6]|7[01]|720)"), (16,)),  # Mastercard
    (re.compile(r"3[47]"), (15,)),  # American Express
    (re.compile(r"6(?:011|5|4[4-9])"), (16, 19)),  # Discover
    (re.compile(r"35(?:2[89]|[3-8])"), (16, 19)),  # JCB
    (re.compile(r"3(?:0[0-5]|[689])"), (14, 16, 19)),  # Diners Club
    (re.compile(r"62"), (16, 17, 18, 19)),  # UnionPay
    (re.compile(r"5[06-9]|6[0-9]"), (12, 13, 14, 15, 16, 17, 18, 19)),  # Maestro
)
_IBAN_LENGTHS: Final = {
    "AD": 24, "AE": 23, "AT": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "CH": 21,
    "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FR": 27,
    "GB": 22, "GR": 27, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IS": 26, "IT": 27,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MT": 31, "NL": 18, "NO": 15,
    "PL": 28, "PT": 25, "RO": 24, "SA": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27,
    "TR": 26, "UA": 29,
}  # fmt: skip


def luhn(digits: str) -> bool:
    """Whether a digit string passes the Luhn check."""
    total = 0
    for i, c in enumerate(reversed(digits)):
        n = ord(c) - 48
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def is_card(digits: str) -> bool:
    """13-19 digits with a card network's prefix and length, and a valid Luhn check."""
    if not 13 <= len(digits) <= 19 or not luhn(digits):
        return False
    return any(p.match(digits) and len(digits) in lengths for p, lengths in _NETWORKS)


def is_iban(value: str) -> bool:
    """An IBAN at its country's length whose mod-97 check is 1."""
    code = value.replace(" ", "")
    if _IBAN_LENGTHS.get(code[:2]) != len(code):
        return False
    moved = code[4:] + code[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def is_ssn(area: str, group: str, serial: str) -> bool:
    """The SSA's rules: no area 000, 666 or 900-999, no group 00, no serial 0000."""
    return (
        area not in ("000", "666")
        and not area.startswith("9")
        and group != "00"
        and serial != "0000"
    )


def _spelled_digits(text: str, at_least: int = 13) -> bool:
    """Whether `text` may hold a number spelled in digit words (`at_least` of them)."""
    if len(text) < 3 * at_least:
        return False
    low = " " + text.lower()
    return sum(low.count(w) for w in _WORD_PROBES) >= at_least


def worth_a_look(text: str) -> bool:
    """The cheap check: a digit, an `@`, or a digit word (a spelled number)."""
    return "@" in text or _DIGIT.search(text) is not None or _spelled_digits(text)


class Personal:
    """Masks personal data in text, per a mode per kind."""

    def __init__(
        self,
        fingerprint: Callable[[str], str],
        modes: Mapping[str, str] | None = None,
        regions: tuple[str, ...] = ("US",),
        found: Callable[[str], None] | None = None,
    ) -> None:
        self._fp = fingerprint
        self._modes = {kind: (modes or {}).get(kind, "mask") for kind in KINDS}
        self._regions = regions
        # Told of each find's kind (the metric); the app sets it.
        self.found = found
        self.active = any(mode != "keep" for mode in self._modes.values())

    def mask(self, text: str) -> str:
        """`text` with every personal datum of a masked kind replaced by its marker."""
        if not self.active or not worth_a_look(text):
            return text
        return _apply(text, self.finds(text))

    def finds(self, text: str) -> list[tuple[int, int, str]]:
        """Each personal datum in `text`: (start, end, what to write instead)."""
        out: list[tuple[int, int, str]] = []
        if "@" in text:
            out += self._each(_EMAIL, text, lambda m: self._marker("email", m.group(0).lower()))
        if _DIGIT.search(text) is not None:
            out += self._each(_CARD, text, self._card)
            out += self._each(_SSN, text, self._ssn)
            if any(c.isupper() for c in text):
                out += self._each(_IBAN, text, self._iban)
            out += self._phones(text, out)
        if _spelled_digits(text):
            out += self._each(_SPELLED, text, self._spelled)
        return out

    def mask_stream(self, carry: str, text: str) -> str:
        """One delta of a text stream, judged with the stream's last characters before it
        (`carry`), as keys are: a number that the two spell together is masked where it
        goes on, and digits at the delta's end that may begin a card are held back (a
        card split over deltas never shows more than a card's first digits)."""
        joined, n = carry + text, len(carry)
        if not self.active or not (worth_a_look(joined) or _spelled_digits(joined[-96:], 4)):
            return text
        reaching = [(max(s, n) - n, e - n, m) for s, e, m in self.finds(joined) if e > n]
        tail = _TRAILING.search(joined)
        if tail is not None and self._modes["card"] != "keep" and tail.end() > n:
            digits = re.sub(r"\D", "", tail.group(0))
            words = len(_TOKEN.findall(tail.group(0)))
            may_begin = digits[:1] in "23456" and len(digits) < 19
            if may_begin and (len(digits) >= 4 or words >= 4):
                start = max(tail.start(), n) - n
                if not any(s <= start < e for s, e, _ in reaching):
                    reaching.append((start, len(text), "[redacted:partial]"))
        return _apply(text, reaching)

    @staticmethod
    def _each(
        pattern: re.Pattern[str], text: str, judge: Callable[[re.Match[str]], str | None]
    ) -> list[tuple[int, int, str]]:
        out = []
        for m in pattern.finditer(text):
            marker = judge(m)
            if marker is not None:
                out.append((m.start(), m.end(), marker))
        return out

    def _marker(self, kind: str, canonical: str) -> str | None:
        mode = self._modes[kind]
        if mode == "keep":
            return None
        if self.found is not None:
            self.found(kind)
        fp = self._fp(canonical)
        if kind == "card" and mode == "last4":
            return f"[redacted:card:{fp}:…{canonical[-4:]}]"
        return f"[redacted:{kind}:{fp}]"

    def _card(self, m: re.Match[str]) -> str | None:
        digits = re.sub(r"\D", "", m.group(0))
        return self._marker("card", digits) if is_card(digits) else None

    def _spelled(self, m: re.Match[str]) -> str | None:
        found = m.group(0)
        digits = "".join(_DIGIT_WORDS.get(t.lower(), t) for t in _TOKEN.findall(found))
        if not is_card(digits):
            return None
        trail = found[len(found.rstrip(" ,-\n\t")) :]
        marker = self._marker("card", digits)
        return None if marker is None else marker + trail

    def _ssn(self, m: re.Match[str]) -> str | None:
        if not is_ssn(m.group(1), m.group(3), m.group(4)):
            return None
        return self._marker("ssn", m.group(1) + m.group(3) + m.group(4))

    def _iban(self, m: re.Match[str]) -> str | None:
        found = m.group(0)
        return self._marker("iban", found.replace(" ", "")) if is_iban(found) else None

    def _phones(self, text: str, taken: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
        """Phone numbers: each phone-shaped run parsed and confirmed valid by
        `phonenumbers` (international format in any region, national format in the
        configured ones). Parsing the candidates costs a fraction of scanning the text
        with the library's matcher."""
        out = []
        for m in _PHONE.finditer(text):
            found = m.group(0).rstrip(" .-")
            start, end = m.start(), m.start() + len(found)
            if any(s < end and start < e for s, e, _ in taken):
                continue  # inside a card, an SSN or an IBAN already found
            if found.isdigit() and _IDENTIFIER.search(text[max(0, start - 24) : start]):
                continue  # `serial 6515045729`: an unformatted number named as something else
            number = self._valid_number(found)
            if number is not None:
                marker = self._marker("phone", number)
                if marker is not None:
                    out.append((start, end, marker))
        return out

    def _valid_number(self, candidate: str) -> str | None:
        """`candidate` as E.164 when it is a valid number (in one of the regions, or in
        international format), else None."""
        for region in (None,) if candidate.startswith("+") else self._regions:
            try:
                number = phonenumbers.parse(candidate, region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(number):
                return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        return None


def _apply(text: str, finds: list[tuple[int, int, str]]) -> str:
    """`text` with each find's span replaced by its marker (overlaps: the first wins)."""
    if not finds:
        return text
    out, at = [], 0
    for start, end, marker in sorted(finds):
        if start < at:
            continue
        out += [text[at:start], marker]
        at = end
    out.append(text[at:])
    return "".join(out)
