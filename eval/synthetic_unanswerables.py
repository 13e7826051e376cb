"""Unanswerable questions made from answerable ones, for the verifier's training (eval/train_verifier.py).

SQuAD 2.0's crowd workers wrote their unanswerable questions by editing answerable ones so that they still look
answerable from the same paragraph: an entity or a number swapped, a negation put in, a word turned to its
opposite (Rajpurkar et al. 2018, table 2: these make up about half of them). This module makes the same edits by
rule, so the verifier sees more of the hardest negatives than ten articles hold: the question is the original
with one edit, its windows are the original's (which now do not answer it).

One edit per question, drawn among those that apply: a number or a capitalised name of the question that the evidence
holds, swapped for one of the same kind that the article has but the evidence does not; a word of the small
opposites list turned round; a negation put after the first auxiliary verb. Seeded; a question no rule applies to
gives none. Training data only: nothing here runs in the service.
"""

from __future__ import annotations

import random
import re

WORD = re.compile(r"[A-Za-z][A-Za-z\-]*(?:'(?!s\b)[A-Za-z]+)?|\d[\d,.]*\d|\d")
MID_SENTENCE_NAME = re.compile(r"(?<=[a-z,;:] )[A-Z][A-Za-z\-]{2,}")  # capitalised after a lower-case word: a name
AUXILIARY = re.compile(r"\b(did|does|do|was|were|is|are|can|could|would|will|has|have|had|should)\b", re.IGNORECASE)
OPPOSITES = {
    "first": "last", "last": "first", "before": "after", "after": "before", "largest": "smallest", "smallest": "largest",
    "most": "least", "least": "most", "more": "less", "less": "more", "highest": "lowest", "lowest": "highest",
    "increase": "decrease", "decrease": "increase", "increased": "decreased", "decreased": "increased",
    "won": "lost", "lost": "won", "win": "lose", "lose": "win", "began": "ended", "ended": "began", "start": "end",
    "started": "ended", "early": "late", "earliest": "latest", "latest": "earliest", "north": "south",
    "south": "north", "east": "west", "west": "east", "rise": "fall", "rose": "fell", "fell": "rose",
    "larger": "smaller", "smaller": "larger", "higher": "lower", "lower": "higher", "accepted": "rejected",
    "rejected": "accepted", "supported": "opposed", "opposed": "supported", "allowed": "banned", "banned": "allowed",
}


def is_number(word: str) -> bool:
    return word[0].isdigit()


def is_name(word: str) -> bool:
    return word[0].isupper() and not word.isupper() and len(word) > 2


def swap_candidates(question: str, evidence: str) -> list[re.Match]:
    """Numbers and capitalised names of the question (past its first word) that the evidence holds."""
    words = list(WORD.finditer(question))[1:]
    return [m for m in words if (is_number(m.group()) or is_name(m.group())) and m.group() in evidence]


def swap(question: str, evidence: str, article: str, rng: random.Random) -> str | None:
    candidates = swap_candidates(question, evidence)
    rng.shuffle(candidates)
    names = {w for w in MID_SENTENCE_NAME.findall(article) if not w.isupper()}
    numbers = {w for w in WORD.findall(article) if is_number(w)}
    for m in candidates:
        pool = numbers if is_number(m.group()) else names
        same = sorted(w for w in pool if w not in evidence and w not in question and (not is_number(w) or len(w) == len(m.group())))
        if same:
            return question[: m.start()] + rng.choice(same) + question[m.end() :]
    return None


def turn_round(question: str, rng: random.Random) -> str | None:
    hits = [m for m in WORD.finditer(question) if m.group().lower() in OPPOSITES]
    if not hits:
        return None
    m = rng.choice(hits)
    word = OPPOSITES[m.group().lower()]
    word = word.capitalize() if m.group()[0].isupper() else word
    return question[: m.start()] + word + question[m.end() :]


def negate(question: str) -> str | None:
    m = AUXILIARY.search(question)
    if not m or re.search(r"\bnot\b|n't\b|\bnever\b", question):
        return None
    word = m.group()
    negated = {"can": "can't", "will": "won't"}.get(word.lower(), word + "n't")
    return question[: m.start()] + (negated.capitalize() if word[0].isupper() else negated) + question[m.end() :]


def unanswerable_version(question: str, evidence: str, article: str, rng: random.Random, negations: bool = True) -> str | None:
    """`question` with one edit that its evidence no longer answers (the rule drawn among those that apply), or
    None when none does."""
    made = [q for q in (swap(question, evidence, article, rng), turn_round(question, rng), negate(question) if negations else None) if q]
    return rng.choice(made) if made else None
