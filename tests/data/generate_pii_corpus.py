"""
Writes tests/data/pii_corpus.json: a labelled corpus for the personal-data detectors.

Positives are generated, not taken from lists of well-known test numbers: card numbers of
each network with a valid Luhn digit (plain, in groups joined by spaces, dashes or dots,
and read out as digit words the way transcription writes them), IBANs of several
countries with valid check digits, e-mail addresses, phone numbers valid for their region
(US national formats and international ones), and SSNs that keep the SSA's rules. Hard
negatives look like them and are not: amounts, dates, times, ZIP codes, order and
tracking numbers, version strings, Luhn-invalid digit runs, IBANs with a wrong check,
SSNs with a forbidden area or group, phone-like numbers that are not valid.

    python tests/data/generate_pii_corpus.py      # fixed seed: the same file each time

Each entry: {"text": ..., "kind": one of card/iban/email/phone/ssn or null, "value": the
substring that must not survive (for positives)}.
"""

from __future__ import annotations

import json
import random
import string
from pathlib import Path

import phonenumbers

SEED = 20261206
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def luhn_digit(body: str) -> str:
    total = 0
    for i, c in enumerate(reversed(body)):
        n = int(c)
        if i % 2 == 0:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return str((10 - total % 10) % 10)


def card(rng: random.Random) -> str:
    prefix, length = rng.choice(
        [("4", 16), ("4", 13), ("51", 16), ("55", 16), ("2221", 16), ("2720", 16), ("34", 15),
         ("37", 15), ("6011", 16), ("65", 16), ("3530", 16), ("62", 16), ("36", 14)]
    )  # fmt: skip
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    return body + luhn_digit(body)


def grouped(digits: str, sep: str) -> str:
    if len(digits) == 15:
        parts = [digits[:4], digits[4:10], digits[10:]]
    else:
        parts = [digits[i : i + 4] for i in range(0, len(digits), 4)]
    return sep.join(parts)


def iban(rng: random.Random) -> str:
    country, length = rng.choice(
        [("DE", 22), ("GB", 22), ("FR", 27), ("NL", 18), ("ES", 24), ("IT", 27)]
    )
    if country == "GB":
        bban = "".join(rng.choice(string.ascii_uppercase) for _ in range(4)) + "".join(
            rng.choice(string.digits) for _ in range(14)
        )
    elif country == "NL":
        bban = "".join(rng.choice(string.ascii_uppercase) for _ in range(4)) + "".join(
            rng.choice(string.digits) for _ in range(10)
        )
    elif country == "IT":
        bban = rng.choice(string.ascii_uppercase) + "".join(
            rng.choice(string.digits) for _ in range(22)
        )
    else:
        bban = "".join(rng.choice(string.digits) for _ in range(length - 4))
    moved = bban + country + "00"
    check = 98 - int("".join(str(int(c, 36)) for c in moved)) % 97
    code = f"{country}{check:02d}{bban}"
    return " ".join(code[i : i + 4] for i in range(0, len(code), 4)) if rng.random() < 0.6 else code


def phone(rng: random.Random) -> tuple[str, str]:
    """A valid number and how it is written."""
    while True:
        if rng.random() < 0.6:
            area = rng.choice(
                ["212", "415", "312", "617", "206", "303", "512", "702", "818", "917"]
            )
            number = f"{area}{rng.randint(2, 9)}{rng.randint(0, 99):02d}{rng.randint(0, 9999):04d}"
            parsed = phonenumbers.parse(number, "US")
            style = rng.choice(
                ["({a}) {b}-{c}", "{a}-{b}-{c}", "{a}.{b}.{c}", "+1 {a} {b} {c}", "1-{a}-{b}-{c}"]
            )
            text = style.format(a=number[:3], b=number[3:6], c=number[6:])
        else:
            region = rng.choice(["GB", "DE", "FR", "IN", "AU", "BR"])
            example = phonenumbers.example_number_for_type(
                region, phonenumbers.PhoneNumberType.MOBILE
            )
            national = str(example.national_number)
            digits = national[:-4] + "".join(rng.choice(string.digits) for _ in range(4))
            parsed = phonenumbers.parse(f"+{example.country_code}{digits}", None)
            text = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        if phonenumbers.is_valid_number(parsed):
            return text, text


def ssn(rng: random.Random) -> str:
    while True:
        area, group, serial = rng.randint(1, 899), rng.randint(1, 99), rng.randint(1, 9999)
        if area != 666:
            sep = "-" if rng.random() < 0.7 else " "
            return f"{area:03d}{sep}{group:02d}{sep}{serial:04d}"


def main() -> None:
    rng = random.Random(SEED)
    entries: list[dict[str, object]] = []

    def positive(kind: str, value: str, frames: list[str]) -> None:
        entries.append({"text": rng.choice(frames).format(v=value), "kind": kind, "value": value})

    for _ in range(200):
        digits = card(rng)
        sep = rng.choice(["", " ", "-", "."])
        positive(
            "card",
            grouped(digits, sep) if sep else digits,
            ["my card number is {v}", "it's {v}.", "Card: {v}, expiry next year", "{v}"],
        )
    for _ in range(60):
        digits = card(rng)
        spoken = " ".join(WORDS[int(d)] for d in digits)
        if rng.random() < 0.3:
            spoken = spoken.replace("zero", "oh")
        positive(
            "card", spoken, ["the number is {v}", "sure, it's {v} and the expiry is march", "{v}"]
        )
    for _ in range(120):
        positive(
            "iban", iban(rng), ["please send it to {v}", "IBAN: {v}", "my account {v} at the bank"]
        )
    for _ in range(120):
        user = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 10)))
        domain = rng.choice(
            ["example.com", "mail.example.org", "acme.co.uk", "bank-support.example.net"]
        )
        sep = rng.choice([".", "_", "+", ""])
        positive(
            "email",
            f"{user}{sep}{rng.randint(1, 99)}@{domain}",
            ["write to {v} please", "email: {v}", "it's {v}."],
        )
    for _ in range(160):
        text, _ = phone(rng)
        positive(
            "phone",
            text,
            ["call me back at {v}", "my number is {v}.", "phone: {v}", "reach her on {v} tomorrow"],
        )
    for _ in range(120):
        positive("ssn", ssn(rng), ["my social is {v}", "SSN {v}", "it's {v}."])

    negatives = []
    for _ in range(60):
        negatives.append(
            f"that will be {rng.randint(1, 9)},{rng.randint(100, 999)} dollars and {rng.randint(1, 99)} cents"
        )
        negatives.append(
            f"the meeting is on 2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} at {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"
        )
        negatives.append(
            f"it shipped on {rng.randint(1, 12)}/{rng.randint(1, 28)}/20{rng.randint(10, 30)}"
        )
        negatives.append(f"the zip code is {rng.randint(10000, 99999)}-{rng.randint(1000, 9999)}")
        negatives.append(
            f"we're on version {rng.randint(1, 20)}.{rng.randint(0, 40)}.{rng.randint(0, 99)}"
        )
        bad = card(rng)
        bad = bad[:-1] + str((int(bad[-1]) + rng.randint(1, 9)) % 10)  # Luhn-invalid
        negatives.append(f"order number {grouped(bad, rng.choice([' ', '-', '']))}")
        negatives.append(
            f"tracking 1Z{''.join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(16))}"
        )
        negatives.append(f"USPS tracking {''.join(rng.choice(string.digits) for _ in range(22))}")
        code = iban(rng).replace(" ", "")
        wrong = code[:2] + f"{(int(code[2:4]) + rng.randint(1, 50)) % 100:02d}" + code[4:]
        negatives.append(f"reference {wrong}")
        negatives.append(
            f"ticket {rng.choice(['000', '666', '912'])}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}"
        )
        negatives.append(f"batch {rng.randint(100, 899)}-00-{rng.randint(1000, 9999)}")
        negatives.append(
            f"extension {rng.randint(100, 999)}, room {rng.randint(100, 999)}, floor {rng.randint(1, 40)}"
        )
        negatives.append(
            f"it takes {rng.randint(2, 59)} minutes, about {rng.randint(2, 12)} hours in all"
        )
        negatives.append(f"account ending in {rng.randint(1000, 9999)}")
        negatives.append(f"serial {rng.randint(10**9, 10**10 - 1)}")
        negatives.append(
            f"call 555-{rng.randint(100, 199):04d}"
            if rng.random() < 0.5
            else f"dial 000-000-{rng.randint(1000, 9999)}"
        )
    entries += [{"text": t, "kind": None, "value": None} for t in negatives]
    path = Path(__file__).parent / "pii_corpus.json"
    path.write_text(
        json.dumps({"seed": SEED, "entries": entries}, indent=0, ensure_ascii=False) + "\n"
    )
    print(f"{len(entries)} entries written to {path}")


if __name__ == "__main__":
    main()
