"""Text front end for TTS: English normalisation and a character vocabulary.

`normalize` lower-cases, expands abbreviations, numbers (cardinals, ordinals,
decimals, years, currency, percent) and maps punctuation onto a fixed set.
`CharVocabulary` turns normalised text into ids with an end token; characters
outside the vocabulary are dropped with a warning or rejected, as configured.
`PhonemeVocabulary` does the same with espeak-ng's US-English IPA of the text.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import gin
from absl import logging

from tfaudio.errors import ConfigError
from tfaudio.limits import Choice, limits

PAD, END = "_", "~"
LETTERS = "abcdefghijklmnopqrstuvwxyz"
PUNCTUATION = " '.,?!-"

_ABBREVIATIONS = {
    "mr": "mister", "mrs": "missus", "ms": "miss", "co": "company",
    "jr": "junior", "sr": "senior", "lt": "lieutenant", "col": "colonel", "gen": "general",
    "capt": "captain", "vs": "versus", "etc": "et cetera", "ft": "fort",
    "mt": "mount", "approx": "approximately", "dept": "department", "ext": "extension",
}
# Read by what follows: before a capitalised name ("St. Louis", "Dr. Smith") or not ("Main St.").
_BEFORE_A_NAME = {"st": ("saint", "street"), "dr": ("doctor", "drive")}
_ABBREVIATION = re.compile(r"\b(" + "|".join([*_ABBREVIATIONS, *_BEFORE_A_NAME, "no"]) + r")\.(\s*)(?=(\S?))",
                           re.IGNORECASE)
_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
         "fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10 ** 12, "trillion"), (10 ** 9, "billion"), (10 ** 6, "million"), (1000, "thousand"))
_ORDINAL_IRREGULAR = {"one": "first", "two": "second", "three": "third", "five": "fifth",
                      "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}
_PUNCTUATION_MAP = {";": ",", ":": ",", "(": ", ", ")": ", ", "[": ", ", "]": ", ", "\u2014": "-",
                    "\u2013": "-", "\u2019": "'", "\u2018": "'", '"': "", "\u201c": "", "\u201d": "",
                    "&": " and ", "+": " plus ", "=": " equals ", "/": " slash ", "@": " at ",
                    "#": " number ", "*": " star ", "$": " dollar ", "%": " percent "}


def number_to_words(n: int) -> str:
    """Cardinal English words for a non-negative integer."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + number_to_words(rest))
    for value, name in _SCALES:
        if n >= value:
            rest = n % value
            return number_to_words(n // value) + " " + name + ("" if rest == 0 else " " + number_to_words(rest))
    raise AssertionError(n)


def _ordinal(n: int) -> str:
    words = number_to_words(n).split(" ")
    last = words[-1]
    if last in _ORDINAL_IRREGULAR:
        words[-1] = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def _year(n: int) -> str:
    if n % 100 == 0:
        return number_to_words(n // 100) + " hundred"
    if n % 1000 < 10:
        return number_to_words(n)
    tail = n % 100
    return number_to_words(n // 100) + " " + ("oh " + _ONES[tail] if tail < 10 else number_to_words(tail))


def _expand_number(match: re.Match) -> str:
    text = match.group(0).replace(",", "")
    if match.group("ordinal"):
        return " " + _ordinal(int(match.group("int").replace(",", ""))) + " "
    if "." in text:
        whole, frac = text.split(".", 1)
        return " " + number_to_words(int(whole or 0)) + " point " + " ".join(_ONES[int(d)] for d in frac) + " "
    n = int(text)
    if 1100 <= n < 2100 and "," not in match.group(0) and n % 1000 >= 10:
        return " " + _year(n) + " "
    return " " + number_to_words(n) + " "


_DIGITS = r"\d(?:\d|,(?=\d{3}))*"  # commas only as thousands separators
_NUMBER = re.compile(rf"(?P<int>{_DIGITS})(?:(?P<ordinal>st|nd|rd|th)\b|\.\d+)?")
_CURRENCY = re.compile(rf"\$({_DIGITS})(?:\.(\d\d))?")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%")


def _expand_currency(match: re.Match) -> str:
    dollars = int(match.group(1).replace(",", ""))
    cents = int(match.group(2) or 0)
    parts = [f"{number_to_words(dollars)} dollar{'s' if dollars != 1 else ''}"] if dollars or not cents else []
    if cents:
        parts.append(f"{number_to_words(cents)} cent{'s' if cents != 1 else ''}")
    return " " + " and ".join(parts) + " "


def _expand_abbreviation(match: re.Match) -> str:
    word, space, following = match.group(1).lower(), match.group(2), match.group(3)
    if word == "no":  # "No. 5" is a number; "The answer is no." is the word
        return "number" + space if following.isdigit() else match.group(0)
    if word in _BEFORE_A_NAME:
        expansion = _BEFORE_A_NAME[word][0 if following.isupper() else 1]
    else:
        expansion = _ABBREVIATIONS[word]
    return expansion + ("" if following else ".") + space  # at the end, its period ends the sentence


def normalize(text: str) -> str:
    """Lower-case English text with numbers and abbreviations spelled out and
    punctuation mapped onto " '.,?!-"."""
    text = _ABBREVIATION.sub(_expand_abbreviation, text)
    text = _CURRENCY.sub(_expand_currency, text)
    text = _PERCENT.sub(lambda m: f"{m.group(1)} percent", text)
    text = _NUMBER.sub(_expand_number, text)
    text = text.lower()
    for src, dst in _PUNCTUATION_MAP.items():
        text = text.replace(src, dst)
    text = re.sub(r"\s+", " ", text).strip(" ,")
    text = re.sub(r"\s+([.,?!])", r"\1", text)
    return re.sub(r",+([.,?!])", r"\1", text)


class TextError(ValueError):
    """Text the vocabulary cannot encode."""


class CharVocabulary:
    """Characters to ids: 0 is padding, 1 the end token, then punctuation and letters.

    Args:
      normalize_text: apply `normalize` before encoding.
      unknown: "drop" (warn once per character) or "error" for characters
        outside the vocabulary after normalisation.
    """

    def __init__(self, normalize_text: bool = True, unknown: str = "drop"):
        if unknown not in ("drop", "error"):
            raise ConfigError(f"vocabulary.unknown={unknown!r}: use 'drop' or 'error'")
        self.normalize_text, self.unknown = normalize_text, unknown
        self.symbols = [PAD, END] + list(PUNCTUATION) + list(LETTERS)
        self._ids = {s: i for i, s in enumerate(self.symbols)}
        self._warned: set[str] = set()

    def __len__(self) -> int:
        return len(self.symbols)

    @property
    def end_id(self) -> int:
        return self._ids[END]

    def encode(self, text: str, source: str = "text") -> list[int]:
        """Ids of the normalised text followed by the end token."""
        return self._ids_of(normalize(text) if self.normalize_text else text, source)

    def _ids_of(self, clean: str, source: str) -> list[int]:
        unknown = sorted({c for c in clean if c not in self._ids or c in (PAD, END)})
        if unknown and self.unknown == "error":
            raise TextError(f"{source}: characters {unknown} are not in the vocabulary; set "
                            "vocabulary.unknown = 'drop' or fix the transcript")
        for c in set(unknown) - self._warned:
            logging.warning("%s: dropping character %r, not in the vocabulary", source, c)
            self._warned.add(c)
        return [self._ids[c] for c in clean if c not in unknown] + [self.end_id]

    def decode(self, ids) -> str:
        return "".join(self.symbols[int(i)] for i in ids if int(i) > 1)


# espeak-ng's en-us IPA symbols (stress marks, length, syllabic mark) and the pauses kept.
PHONEMES = " ,.?!abdefhijklmnopstuvwxzæçðŋɐɑɒɔəɚɛɜɡɪɹɾʃʊʌʒʔˈˌː̩θᵻ"


class PhonemeVocabulary(CharVocabulary):
    """IPA symbols to ids: the normalised text as espeak-ng speaks it in US English
    (`espeak-ng -q --ipa -v en-us`), a comma between the lines espeak-ng breaks it into,
    then the text's final punctuation and the end token. Needs the espeak-ng program."""

    def __init__(self, unknown: str = "drop"):
        super().__init__(True, unknown)
        if shutil.which("espeak-ng") is None:
            raise ConfigError("vocabulary.kind='phonemes' needs espeak-ng: `sudo apt-get install espeak-ng`")
        self.symbols = [PAD, END] + list(PHONEMES)
        self._ids = {s: i for i, s in enumerate(self.symbols)}
        self._cache: dict[str, list[int]] = {}

    def encode(self, text: str, source: str = "text") -> list[int]:
        if text not in self._cache:
            clean = normalize(text)
            lines = subprocess.run(["espeak-ng", "-q", "--ipa", "-v", "en-us", clean], capture_output=True,
                                   text=True, check=True).stdout.split("\n")
            ending = clean[-1] if clean and clean[-1] in ".?!" else "."
            self._cache[text] = self._ids_of(", ".join(x.strip() for x in lines if x.strip()) + ending, source)
        return self._cache[text]


class TranscriptVocabulary(CharVocabulary):
    """What a recogniser writes: id 0 is the CTC blank, then space, apostrophe and the
    letters. The normalised text's other punctuation becomes a word break; spaces are
    collapsed; no end token."""

    def __init__(self):
        super().__init__(True, "drop")
        self.symbols = [PAD, " ", "'"] + list(LETTERS)
        self._ids = {s: i for i, s in enumerate(self.symbols)}

    def encode(self, text: str, source: str = "text") -> list[int]:
        clean = re.sub(r"[^a-z']+", " ", normalize(text)).strip()
        return [self._ids[c] for c in clean]

    def decode(self, ids) -> str:
        return "".join(self.symbols[int(i)] for i in ids if int(i) > 0)


@gin.configurable
@limits(unknown=Choice("drop", "error"), kind=Choice("characters", "phonemes", "transcript"))
def vocabulary(normalize_text: bool = True, unknown: str = "drop", kind: str = "characters") -> CharVocabulary:
    """The experiment's vocabulary: the one place its settings are bound, read by the data
    (AudioData.text_encoder), the task and, through `vocabulary_size`, the model.
    kind: "characters", "phonemes" (espeak-ng's IPA; normalize_text always applies) or
    "transcript" (a recogniser's letters, space and apostrophe after a CTC blank)."""
    if kind == "phonemes":
        return PhonemeVocabulary(unknown)
    if kind == "transcript":
        return TranscriptVocabulary()
    return CharVocabulary(normalize_text, unknown)


@gin.configurable
def vocabulary_size() -> int:
    """Symbols in `vocabulary()` (Tacotron.vocab_size, DilatedCTC.num_classes)."""
    return len(vocabulary())
