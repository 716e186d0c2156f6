"""Key terms of a brief: its topics (named things) and its content words.

- **Topics** are what alerts are about: aliases of known things (countries,
  organisations) mapped to one canonical name (`Groenland`, `Grønland` →
  ``greenland``), and named entities (runs of capitalised words such as
  ``Donald Trump``, ``World Economic Forum``). A dateline city is not a topic
  by itself; the same city named in the text is.
- **Content terms** are the text's words, case-folded, without stopwords
  (stop-words: those of the detected language, of English, and of whichever
  language's stopwords the text uses most, so that a Spanish or Tagalog tweet
  sheds its function words too), links and @handles. Every word counts, the
  words of names included, and the topics join them at half weight: the
  vector the clusterer compares. Words are not lemmatised: on real labelled
  headlines and tweets it changed no score that mattered, and the lemma
  dictionaries cost a second and about 100 MB per language to load.

Country names come from pycountry's ISO 3166 data and translations; short
forms and demonyms from ``data/aliases.tsv`` and an optional user file.
A brief without a language (the parser knows it from the page's conventions)
has it detected from its stopwords. Pure Python: no Kafka, no Faust.
"""

from __future__ import annotations

import gettext
import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path

__all__ = ["AliasTable", "BriefTerms", "TermExtractor", "LanguageDetector", "term_rarity"]

_TOKEN = re.compile(r"\w+(?:['’]\w+)?", re.UNICODE)
# Links and social handles carry no story: "http://t.co/7atRS5cy" would be three rare "words".
_NOT_TEXT = re.compile(r"\bRT(?=\s*@)|https?://\S+|www\.\S+|@\w+|&(?:amp|lt|gt|quot);")
_MAX_ALIAS_TOKENS = 5
# Lowercase words that may stand inside a name: "Ursula von der Leyen", "Bank of England".
_NAME_PARTICLES = {"van", "von", "der", "den", "de", "la", "le", "of", "al", "bin", "ter", "ten", "du", "da", "del"}
_ISO_LANGUAGES = ("en", "nl", "de", "fr", "da", "es", "it", "pt")


def _fold(text: str) -> str:
    return unicodedata.normalize("NFC", text).casefold()


def _alias_tokens(alias: str) -> tuple[str, ...]:
    return tuple(match.group(0) for match in _TOKEN.finditer(alias))


def _is_abbreviation(alias: str) -> bool:
    letters = [c for c in alias if c.isalpha()]
    return bool(letters) and all(c.isupper() for c in letters) and len(letters) <= 5


class AliasTable:
    """Surface forms → canonical topic names.

    Abbreviations (all capitals, up to five letters: ``VS``, ``US``, ``EU``)
    match only in capitals, so the English pronoun "us" is not a country.
    """

    def __init__(self) -> None:
        self._folded: dict[tuple[str, ...], str] = {}
        self._exact: dict[tuple[str, ...], str] = {}
        # The first word of every alias: most words of a brief open none, and
        # checking that first spares them five tuple lookups each.
        self._first_folded: set[str] = set()
        self._first_exact: set[str] = set()

    def add(self, topic: str, alias: str) -> None:
        tokens = _alias_tokens(alias)
        if not tokens or len(tokens) > _MAX_ALIAS_TOKENS:
            return
        topic = _fold(topic).strip()
        if _is_abbreviation(alias):
            self._exact.setdefault(tokens, topic)
            self._first_exact.add(tokens[0])
        else:
            folded = tuple(_fold(t) for t in tokens)
            self._folded.setdefault(folded, topic)
            self._first_folded.add(folded[0])

    def longest_at(self, words: list[str], folded: list[str], index: int) -> tuple[str, int] | None:
        """The topic of the longest alias that starts at ``words[index]``, and its length in words.

        ``folded`` holds the words case-folded, as :func:`_fold` does.
        """
        if words[index] not in self._first_exact and folded[index] not in self._first_folded:
            return None
        for length in range(min(_MAX_ALIAS_TOKENS, len(words) - index), 0, -1):
            end = index + length
            topic = self._exact.get(tuple(words[index:end])) or self._folded.get(tuple(folded[index:end]))
            if topic is not None:
                return topic, length
        return None

    def topics(self) -> frozenset[str]:
        """Every canonical topic name the table maps to."""
        return frozenset(self._folded.values()) | frozenset(self._exact.values())

    def __len__(self) -> int:
        return len(self._folded) + len(self._exact)

    def load_tsv(self, text: str) -> None:
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            topic, _, aliases = line.partition("\t")
            self.add(topic, topic)
            for alias in aliases.split("|"):
                if alias.strip():
                    self.add(topic, alias.strip())

    @classmethod
    def default(cls, extra_file: str | Path | None = None) -> "AliasTable":
        """Countries from pycountry, then the packaged aliases, then ``extra_file``."""
        table = cls()
        # The curated file wins over generated names where both claim a form.
        table.load_tsv(resources.files("wirewatch.data").joinpath("aliases.tsv").read_text(encoding="utf-8"))
        if extra_file:
            table.load_tsv(Path(extra_file).read_text(encoding="utf-8"))
        _add_countries(table)
        return table


def _add_countries(table: AliasTable) -> None:
    import pycountry

    translations = {
        language: gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[language], fallback=True)
        for language in _ISO_LANGUAGES
    }
    for country in pycountry.countries:
        english = getattr(country, "common_name", None) or country.name
        if "," in english:
            continue
        names = {english, country.name}
        for translation in translations.values():
            names.add(translation.gettext(country.name))
        for name in names:
            if "," not in name and "(" not in name:
                table.add(english, name)


class LanguageDetector:
    """ISO 639-1 language of a text among a configured set, by the stopwords it uses.

    Function words are the surest short-text cue of a language (Grefenstette
    1995): the language whose stop-words list holds most of the text's words
    wins, given at least two of them and no tie. It costs a dictionary lookup a
    word and no model to load.
    """

    def __init__(self, languages: tuple[str, ...], min_hits: int = 2) -> None:
        self.languages = tuple(languages)
        known = _stopword_languages()[0]
        # Where each configured language's votes sit in _stopword_votes(); None for one stop-words lacks.
        self._positions = [known.index(code) if code in known else None for code in self.languages]
        self._min_hits = min_hits

    def detect(self, text: str) -> str | None:
        return self.detect_words([_fold(word) for word in _TOKEN.findall(text)])

    def detect_words(self, folded: list[str]) -> str | None:
        """The language of case-folded words."""
        votes = _stopword_votes(folded)
        hits = [votes[position] if position is not None else 0 for position in self._positions]
        ranked = sorted(range(len(hits)), key=lambda i: -hits[i])
        if not ranked or hits[ranked[0]] < self._min_hits:
            return None
        if len(ranked) > 1 and hits[ranked[1]] == hits[ranked[0]]:
            return None
        return self.languages[ranked[0]]


@lru_cache(maxsize=200_000)
def term_rarity(term: str, language: str | None) -> float:
    """How rare ``term`` is in ordinary language: 8 minus its Zipf frequency (wordfreq), at least 0.5.

    A word used once per billion words scores 8 − 0 = 8; "president" (Zipf
    about 5) scores about 3; a word wordfreq has never seen scores 8.
    """
    zipf = max(_zipf(term, language or "en"), _zipf(term, "en"))
    return max(8.0 - zipf, 0.5)


def _zipf(word: str, language: str) -> float:
    """``wordfreq.zipf_frequency(word, language)``, from its word list directly where that gives the same.

    wordfreq tokenises and normalises every word it is asked for (about 10 µs);
    a case-folded word of Latin letters in a language without special rules
    is its own single token, so one dictionary lookup answers it.
    """
    frequencies = _plain_frequencies(language)
    if frequencies is None or not word.isalpha() or max(word) >= _LATIN_END or word.casefold() != word:
        from wordfreq import zipf_frequency

        return zipf_frequency(word, language)
    frequency = frequencies.get(word)
    if frequency is None:
        return 0.0
    # wordfreq keeps three significant digits and two decimals on the Zipf scale.
    frequency = round(frequency, math.floor(-math.log10(frequency)) + 3)
    return round(math.log10(frequency) + 9, 2)


_LATIN_END = "\u0250"  # the end of Latin Extended-B


@cache
def _plain_frequencies(language: str) -> dict[str, float] | None:
    """The word list of ``language`` when wordfreq looks its words up as they are, else None."""
    from wordfreq import available_languages, get_frequency_dict
    from wordfreq.language_info import get_language_info

    if language not in available_languages():
        return None
    info = get_language_info(language)
    plain = (
        info["tokenizer"] == "regex"
        and info["normal_form"] == "NFC"
        and not info["remove_marks"]
        and not info["dotless_i"]
        and info["diacritics_under"] is None
        and info["transliteration"] is None
        and info["lookup_transliteration"] is None
    )
    # Called as wordfreq calls it itself, so that both share one cached copy of the list (300,000 words).
    return get_frequency_dict(language, "best") if plain else None


_COMMON_ZIPF = 5.2  # "volgens", "tijdens", "zegt" are above; first names such as "Mark" or "Anna" below


@lru_cache(maxsize=100_000)
def _is_common(word: str, language: str | None) -> bool:
    """A word so frequent in the language (wordfreq) that it is no name: 'Volgens', 'Tijdens'."""
    language = language or "en"
    # Where wordfreq's own normalisation is ours (NFC, case-folded), the folded word can take the short way.
    plain = _plain_frequencies(language) is not None
    return _zipf(_fold(word) if plain else word, language) >= _COMMON_ZIPF


@dataclass(frozen=True)
class BriefTerms:
    """What the clusterer and the detector need to know of one brief."""

    language: str | None
    topics: tuple[str, ...]
    weights: dict[str, float]


@lru_cache(maxsize=1)
def _stopword_languages() -> tuple[tuple[str, ...], dict[str, int]]:
    """Every stop-words language, and word → bit mask of the languages listing it as a stopword."""
    from stop_words import AVAILABLE_LANGUAGES, LANGUAGE_MAPPING

    codes = {name: code for code, name in LANGUAGE_MAPPING.items()}
    languages = tuple(codes.get(name, name) for name in AVAILABLE_LANGUAGES)
    masks: dict[str, int] = {}
    for bit, language in enumerate(languages):
        for word in _stopwords(language):
            masks[word] = masks.get(word, 0) | (1 << bit)
    return languages, masks


def _stopword_votes(folded: list[str]) -> list[int]:
    """How many of the case-folded words each stop-words language lists as stopwords."""
    languages, masks = _stopword_languages()
    votes = [0] * len(languages)
    for word in folded:
        mask = masks.get(word, 0)
        while mask:
            low = mask & -mask
            votes[low.bit_length() - 1] += 1
            mask ^= low
    return votes


def _stopword_mask(folded: list[str], language: str | None) -> int:
    """Bit mask of the languages whose stopwords to drop: English, ``language``, and the one the words use most."""
    languages = _stopword_languages()[0]
    votes = _stopword_votes(folded)
    chosen = 0
    for code in ("en", language):
        if code in languages:
            chosen |= 1 << languages.index(code)
    most = max(range(len(languages)), key=lambda bit: (votes[bit], -bit))
    if votes[most]:
        chosen |= 1 << most
    return chosen


@lru_cache(maxsize=64)
def _stopwords(language: str) -> frozenset[str]:
    from stop_words import StopWordError, get_stop_words

    try:
        return frozenset(_fold(word) for word in get_stop_words(language))
    except StopWordError:
        return frozenset()


class TermExtractor:
    """Topics and weighted content terms of a brief."""

    def __init__(
        self,
        aliases: AliasTable,
        detector: LanguageDetector | None,
        *,
        topic_weight: float = 0.5,
    ) -> None:
        self.aliases = aliases
        self.detector = detector
        self.topic_weight = topic_weight

    def warm_up(self, languages: tuple[str, ...]) -> None:
        """Load alias, stopword and rarity data now: the first brief took over a second."""
        for language in languages:
            self.extract("Warm-up: de minister sprak in Genève over Groenland.", language=language)
        if self.detector is not None:
            self.detector.detect("Warm-up: de minister sprak in Genève over Groenland.")

    def extract(self, text: str, *, headline: str | None = None, language: str | None = None) -> BriefTerms:
        full = f"{headline}. {text}" if headline else text
        tokens = list(_TOKEN.finditer(full))
        words = [match.group(0) for match in tokens]
        folded = [_fold(word) for word in words]
        if language is None and self.detector is not None:
            language = self.detector.detect_words(folded)
        gaps = [full[tokens[i - 1].end() : match.start()] if i else "" for i, match in enumerate(tokens)]
        # a name runs on over white space and hyphens ("Kashiwazaki-Kariwa"), not over punctuation
        joined = [bool(i) and gap.strip() in ("", "-") for i, gap in enumerate(gaps)]
        sentence_start = [i == 0 or any(mark in gap for mark in ".!?:\n") for i, gap in enumerate(gaps)]

        topics: Counter[str] = Counter()
        consumed = [False] * len(words)
        index = 0
        while index < len(words):
            found = self.aliases.longest_at(words, folded, index)
            if found is None:
                index += 1
                continue
            topic, length = found
            topics[topic] += 1
            for offset in range(length):
                consumed[index + offset] = True
            index += length

        stopwords = _stopwords(language) if language else frozenset()
        stopwords = stopwords | _stopwords("en") if language != "en" else stopwords
        for start, end in self._names(words, joined, consumed, sentence_start, stopwords, language):
            name = _fold(" ".join(words[start:end]))
            topics[name] += 1
            for position in range(start, end):
                consumed[position] = True

        content_words = [_fold(word) for word in _TOKEN.findall(_NOT_TEXT.sub(" ", full))]
        masks = _stopword_languages()[1]
        drop = _stopword_mask(content_words, language)
        content = Counter(
            word for word in content_words if len(word) > 1 and not word.isdigit() and not masks.get(word, 0) & drop
        )

        topics = _merge_surnames(topics)
        weights: dict[str, float] = {}
        for term, count in content.items():
            weights[term] = (1 + math.log(count)) * term_rarity(term, language)
        for topic, count in topics.items():
            weights[topic] = weights.get(topic, 0.0) + self.topic_weight * (1 + math.log(count)) * term_rarity(
                topic, language
            )
        return BriefTerms(language=language, topics=tuple(sorted(topics)), weights=weights)

    @staticmethod
    def _names(
        words: list[str],
        joined: list[bool],
        consumed: list[bool],
        sentence_start: list[bool],
        stopwords: frozenset[str],
        language: str | None,
    ) -> list[tuple[int, int]]:
        """Runs of capitalised words not yet matched as aliases.

        A run stops at punctuation (``joined[i]`` is false when anything but
        white space or a hyphen separates word i from word i-1); stopwords
        and common words capitalised only because they open a sentence ("De",
        "Volgens", "The") are not part of a name.
        """

        def capitalised(position: int) -> bool:
            return not consumed[position] and words[position][:1].isupper()

        spans = []
        index = 0
        while index < len(words):
            if not capitalised(index):
                index += 1
                continue
            end = index + 1
            while end < len(words) and joined[end] and not consumed[end]:
                if capitalised(end):
                    end += 1
                    continue
                # particles inside a name: "Ursula von der Leyen", "Bank of England"
                probe = end
                while probe < len(words) and joined[probe] and _fold(words[probe]) in _NAME_PARTICLES:
                    probe += 1
                if probe > end and probe < len(words) and joined[probe] and capitalised(probe):
                    end = probe + 1
                    continue
                break
            start = index
            if sentence_start[start]:
                while start < end and (_fold(words[start]) in stopwords or _is_common(words[start], language)):
                    start += 1
            index = end
            if start == end:
                continue
            word = _fold(words[start])
            if end - start == 1 and (sentence_start[start] or word in stopwords or len(word) < 3):
                # A lone capitalised word opening a sentence is usually just a word.
                continue
            spans.append((start, end))
        return spans



def _merge_surnames(topics: Counter[str]) -> Counter[str]:
    """Count a short form as the longer name it ends ("Trump" → "Donald Trump") when the brief has both."""
    merged: Counter[str] = Counter()
    for topic, count in topics.items():
        owner = min((name for name in topics if name.endswith(" " + topic)), key=len, default=None)
        merged[owner or topic] += count
    return merged
