"""Answer types: what kind of answer a question asks for ("when" a date, "how many" a number, "which city"
a place name), and whether a sentence holds one.

Read by both the highlight (a sentence that holds the asked-for kind of answer scores higher) and the verdict
(the evidence sentence must hold it). Rules over the question's wording, chosen on the dev split; pure
functions of strings.
"""

from __future__ import annotations

import bisect
import os
import re
import unicodedata
from typing import Literal

from rag.corpus.chunking import CAPITALS
from rag.corpus.office import roman_numeral

AnswerType = Literal["date", "number", "place"]

# "who" and "where" are not checked: on dev their answers were as often a class or a phrase ("the
# urban petty bourgeoisie", "in the towns") as a name, so the check turned away answerable questions.
_TYPE_RULES: tuple[tuple[re.Pattern, AnswerType], ...] = (
    (re.compile(r"^\s*(how many|how much|how long|how old|how far)\b", re.I), "number"),
    (re.compile(r"^\s*when\b|\b(what|which|in what|in which) (year|decade|century|date|month|day|time)\b", re.I), "date"),
    (re.compile(r"\b(which|what) (city|country|town)\b", re.I), "place"),
)
_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
_DAYS = "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"
# A date, or (for "when" in a schedule: "on the 25th", "every Thursday", "at 15:00") a day or a time of day
_DATE = re.compile(rf"\b(1[0-9]{{3}}|20[0-9]{{2}})s?\b|\b[Cc]entur(y|ies)\b|\b[Dd]ecades?\b|\b({_MONTHS})\b"
                   rf"|\b({_DAYS})s?\b|\b\d{{1,2}}(st|nd|rd|th)\b|\b\d{{1,2}}:\d{{2}}\b|\b(noon|midnight)\b")
# Every English cardinal is built from these words ("ninety-five", "two hundred"), spelled out as often as in
# digits in prose ("the module takes roughly ninety minutes").
_NUMBER_WORDS = (
    r"zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen"
    r"|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety"
    r"|dozens?|hundreds?|thousands?|millions?|billions?|trillions?|half|several|few|once|twice"
)
_NUMBER = re.compile(rf"\d|\b({_NUMBER_WORDS})\b", re.I)
_HOW_LONG = re.compile(r"^\s*how long\b", re.I)
# "How long ...?" is answered by a duration, with or without a number: "an hour", "a fortnight", "for decades".
_DURATION = re.compile(r"\b(seconds?|minutes?|hours?|days?|weeks?|fortnights?|months?|years?|decades?|centur(y|ies)|overnight)\b", re.I)
_CAPITALISED = re.compile(r"\b[A-Z][\w’'-]+")
_WHO = re.compile(r"\s*(who|whom|whose)\b", re.I)


def asks_for_name(question: str) -> bool:
    """A "who"/"whom"/"whose" question."""
    return bool(_WHO.match(question))


def answer_type(question: str) -> AnswerType | None:
    """What kind of answer the question asks for, from its wording; None for why/how/what-is questions."""
    for pattern, kind in _TYPE_RULES:
        if pattern.search(question):
            return kind
    return None


def names_outside(sentence: str, question: str) -> list[str]:
    """Capitalised words of `sentence` (not its first word) that the question does not contain."""
    asked = {w.lower() for w in re.findall(r"[\w’'-]+", question)}
    words = [m for m in _CAPITALISED.finditer(sentence) if m.start() > 0]
    return [m.group() for m in words if m.group().lower() not in asked and m.group().lower().rstrip("’'s") not in asked]


_WORDS = re.compile(r"[^\W_]+")  # letters and digits: "SKU-1010" is two words on both sides of a comparison
_TOKEN = re.compile(r"[\w-]+")
# a name opens with a capital of the Latin, Greek or Cyrillic alphabets ("Éric", "Łódź", "Москва"; rag.corpus.chunking.CAPITALS,
# the capitals a sentence may open with), not only A-Z
_NAME_RUN = re.compile(rf"\b[{re.escape(CAPITALS)}][\w’'-]*(?: [{re.escape(CAPITALS)}][\w’'-]*)*(?: \d+\b(?![.,:]\d))?")  # "Chen Wei", "Trailhawk 700"
_YEAR = re.compile(r"\b(?:1[0-9]{3}|20[0-9]{2})s?\b")  # "in 2023", "the 1990s"
# a season names a period as a year does ("the autumn course" over a page of spring and summer courses); not
# "spring-loaded" or "hot-summer" (a part of a word)
_SEASON = re.compile(r"(?<![\w-])(?:spring|summer|autumn|winter)(?![\w-])", re.I)
_POSSESSIVE = re.compile(r"(?<=\w)[’'](?:s\b)?$")  # Berg's, the Joneses'
_OPENS = re.compile(r"(?:^|[.:;!?]\s+)\W*$")  # what stands before a word that opens a sentence
_AFTER_TITLE = re.compile(r"\b(?:Mr|Mrs|Ms|Dr|Prof|St)\.\s+$")  # "Dr. Berg": the full stop ends no sentence
_ACRONYM = re.compile(r"[A-Z]{2,5}")  # DOB, HR: often a column's short name, so no evidence either way
_MONTH_NAMES = _MONTHS.split("|")
# a month's number by its name or short name ("April", "Apr", "Sept")
_MONTH_OF = {name.lower(): number for number, name in enumerate(_MONTH_NAMES, 1)} | {
    name[:3].lower(): number for number, name in enumerate(_MONTH_NAMES, 1)} | {"sept": 9}
# titles, "I", months and days: capitalised, but not what a row is about
_NOT_NAMES = {"mr", "mrs", "ms", "dr", "prof", "sir", "i", "i'm", "i’m", "i've", "i’ve", "i'd", "i’d", "i'll", "i’ll",
              *_MONTH_OF, *_DAYS.lower().split("|")}


def _word_keys(text: str) -> set[str]:
    """Lower-case words without accents or a plural s ("Webcams" and "Webcam" meet, "José Núñez" and "Jose Nunez")."""
    folded = "".join(c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c))
    return {w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in _WORDS.findall(folded)}


def asked_entities(question: str) -> list[frozenset[str]]:
    """What the question names, each as its words (`_word_keys`): every run of capitalised words but a word that
    opens the question or a sentence of it ("Which department does Chen Wei work in?" -> {chen, wei}), and every
    code of letters and digits (SKU-1010, N131). Titles (Dr, Ms), "I", months, days and acronyms (DOB, HR) are not
    names."""
    return [keys for _, keys in named_in(question)]


def named_in(question: str) -> list[tuple[str, frozenset[str]]]:
    """`asked_entities` with each name as the question writes it: [("Chen Wei", {chen, wei}), ...]."""
    runs = []
    for match in _NAME_RUN.finditer(question):
        words = match.group().split()
        before = question[: match.start()]
        if _OPENS.search(before) and not _AFTER_TITLE.search(before):
            words = words[1:]
        runs += _at_possessives(words)
    named = []
    for run in runs:
        words = [_POSSESSIVE.sub("", w) for w in run if _is_name(w)]
        if not any(c.isalpha() for word in words for c in word):  # "June 1": a month and a day, no name
            continue
        named.append((" ".join(words), frozenset(_word_keys(" ".join(words)))))
    named += [(t, frozenset(_word_keys(t))) for t in _TOKEN.findall(_VERSION_ASKED.sub(" ", question)) if _is_code(t)]  # "v2.4" is no code "v2"
    seen: dict[frozenset[str], str] = {}
    for surface, keys in named:
        if keys and keys not in seen:
            seen[keys] = surface
    return [(surface, keys) for keys, surface in seen.items()]


_MONTH_WORD = "|".join(sorted(_MONTH_OF, key=len, reverse=True))
# a day of a month, either way round ("18 April", "the 18th of April", "April 18th", "Apr. 18"), or an ISO date
_DAY_MONTH = re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?(?: of)? ({_MONTH_WORD})\b\.?|\b({_MONTH_WORD})\.? (\d{{1,2}})(?:st|nd|rd|th)?\b(?![:.]\d)", re.I)
_ISO_DATE = re.compile(r"\b(?:1[0-9]|20)\d{2}-([01]\d)-([0-3]\d)\b")


_NUMERIC_DATE = re.compile(r"\b(\d{1,2})[/.](\d{1,2})[/.](?:\d{4}|\d{2})\b")  # 18/04/2025, 4.18.25: either order is held


def days_of_months(text: str, asked: bool = False) -> list[tuple[str, tuple[int, int]]]:
    """(as written, (day, month)) of each day of a month `text` names: "18 April 2025" -> ("18 April", (18, 4)).
    In a question (`asked`) the month must be capitalised ("10 may attend" is no date) and a date of digits alone is
    not read; in a document "18/04/2025" is held as either order, since which one it means is not written."""
    found = []
    for match in _DAY_MONTH.finditer(text):
        day, month = (match.group(1), match.group(2)) if match.group(1) else (match.group(4), match.group(3))
        if 1 <= int(day) <= 31 and not (asked and month[0].islower()):
            found.append((match.group(0).rstrip("."), (int(day), _MONTH_OF[month.lower()])))
    for match in _ISO_DATE.finditer(text):
        month, day = int(match.group(1)), int(match.group(2))
        if 1 <= month <= 12 and 1 <= day <= 31:
            found.append((match.group(0), (day, month)))
    if not asked:
        for match in _NUMERIC_DATE.finditer(text):
            a, b = int(match.group(1)), int(match.group(2))
            found += [(match.group(0), (x, y)) for x, y in ((a, b), (b, a)) if 1 <= x <= 31 and 1 <= y <= 12]
    return found


# a version: three or four dotted numbers ("3.7.1"), or two after "version", "release" or "v" ("version 3.9", "v2.4")
_VERSION_ASKED = re.compile(r"(?<![\w.])v?(\d+(?:\.\d+){2,3})(?!\.?\d)|\b(?:version|release|v)\s?(\d+\.\d+)(?!\.?\d)", re.I)
_VERSION_HELD = re.compile(r"(?<![\w.])v?(\d+(?:\.\d+)+)(?!\.?\d)", re.I)  # in a text: any dotted number counts (a full stop may follow)


def _version(text: str) -> str:
    """A version without its trailing zero parts: "3.9.0" and "3.9" are one version."""
    parts = text.split(".")
    while len(parts) > 2 and parts[-1] == "0":
        parts.pop()
    return ".".join(parts[:-1] if len(parts) == 2 and parts[-1] == "0" else parts)


def versions_asked(question: str) -> list[tuple[str, str]]:
    """(as written, normalised) of each version the question names: "What was added in version 3.9.0?" -> 3.9."""
    return [(m.group(1) or m.group(2), _version(m.group(1) or m.group(2))) for m in _VERSION_ASKED.finditer(question)]


class Vocabulary:
    """The words of a text (`_word_keys`), asked whether it holds a word in some form: exactly, or sharing its
    first letters with one of them (at least four, and all but the last three of the longer word), so that
    "German" meets "Germany", "Egyptian" "Egypt" and "Asian" "Asia", but "Portugal" not "Porto"; and the days of
    months it names, however written ("18 March", "March 18th", "2025-03-18"), and its dotted numbers (versions:
    "3.7.1", "v2.4"). Built once per document and kept."""

    def __init__(self, text: str):
        self.words = frozenset(_word_keys(text))
        self._sorted = sorted(self.words)
        self.days = frozenset(day for _, day in days_of_months(text))
        self.versions = frozenset(_version(m.group(1)) for m in _VERSION_HELD.finditer(text))

    def holds(self, word: str) -> bool:
        if word in self.words:
            return True
        if word.isdigit() and 0 < int(word) < 40:  # "World War 2" where the text says "World War II"
            return roman_numeral(int(word)) in self.words
        if len(word) < 4 or any(c.isdigit() for c in word):  # a number or a code is held as written: 2023 is not 2024
            return False
        stem = word[:4]
        i = bisect.bisect_left(self._sorted, stem)
        while i < len(self._sorted) and self._sorted[i].startswith(stem):
            other = self._sorted[i]
            shared = len(os.path.commonprefix((word, other)))
            if shared >= max(len(word), len(other)) - 3:
                return True
            i += 1
        return False


def names_absent(question: str, vocabularies: list[Vocabulary]) -> list[str]:
    """The names of the question (`named_in`), its years, seasons, days of months and versions that none of
    `vocabularies` holds (a name whole: every word of it in one of them), as the question writes them: "What is the
    nightly hotel limit in Barcelona?" over a policy that lists Lisbon, Porto and Madrid -> ["Barcelona"]; "When is
    the board meeting on 18 April 2025?" over minutes that say 18 March 2025 -> ["18 April"]; "How much is the autumn
    course?" over a page of spring and summer courses -> ["autumn"] (the rowing club's folder of 2026-12-07: its two
    close questions of that kind found -> uncertain, its AUROC 0.759 -> 0.813; SQuAD tune 0.641 -> 0.642, 19 of its
    3,272 questions name a season; bundled, sections and co-operative figures unchanged)."""
    asked = named_in(question) + [(year, frozenset(_word_keys(year))) for year in _YEAR.findall(question)]
    asked += [(season, frozenset(_word_keys(season))) for season in _SEASON.findall(question)]
    absent = [surface for surface, keys in dict(asked).items() if not any(all(v.holds(w) for w in keys) for v in vocabularies)]
    days = {day: surface for surface, day in reversed(days_of_months(question, asked=True))}  # one day named once
    absent += [surface for day, surface in days.items() if not any(day in v.days for v in vocabularies)]
    versions = dict(versions_asked(question))
    return absent + [surface for surface, version in versions.items() if not any(version in v.versions for v in vocabularies)]


def _is_name(word: str) -> bool:
    return word.lower().rstrip(".") not in _NOT_NAMES and not _ACRONYM.fullmatch(_POSSESSIVE.sub("", word))


_ORDINAL = re.compile(r"\d+(?:st|nd|rd|th)", re.I)


def _is_code(token: str) -> bool:
    """Letters and digits in one token: SKU-1010, N131, A4; not an ordinal (16th)."""
    return any(c.isdigit() for c in token) and any(c.isalpha() for c in token) and not _ORDINAL.fullmatch(token)


def _at_possessives(words: list[str]) -> list[list[str]]:
    """A run of capitalised words cut after each possessive: "Hannah Schulz's ThinkPad" names two things."""
    runs, current = [], []
    for word in words:
        current.append(word)
        if _POSSESSIVE.search(word):
            runs.append(current)
            current = []
    return runs + ([current] if current else [])


def table_has_row(entities: list[frozenset[str]], rows: list[str], context: str) -> bool:
    """Whether each entity the question names is held whole by one of a table's rows, its words in that row or in
    `context` (the table's header, section and document, where a column or a sheet is named). A row answers only for
    its own subject: "What is the lead time of Steelgate?" is not answered by Steelline's row, however alike the
    model finds the two, nor "Which department does Vera Wei work in?" by Vera Conti's and Chen Wei's."""
    around = _word_keys(context)
    held = [_word_keys(row) | around for row in rows]
    return all(any(entity <= words for words in held) for entity in entities)


def type_met(kind: AnswerType | None, sentence: str, question: str) -> bool:
    """Whether `sentence` holds something of the asked-for kind (always true when none is asked)."""
    if kind is None:
        return True
    if kind == "date":
        return bool(_DATE.search(sentence))
    if kind == "number":
        return bool(_NUMBER.search(sentence)) or bool(_HOW_LONG.match(question) and _DURATION.search(sentence))
    return bool(names_outside(sentence, question))
