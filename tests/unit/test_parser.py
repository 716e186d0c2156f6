"""The page parser, on the real seed page and on written variants of it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from wirewatch.core.parser import _dateline_ahead, _item, brief_id, clear_caches, parse_age, parse_page
from wirewatch.errors import ParseError

FETCHED = datetime(2026, 1, 21, 14, 40, 37, tzinfo=timezone.utc)


def parse(page: str, **options):
    return parse_page(page, fetched_at=options.pop("fetched_at", FETCHED), source=options.pop("source", "test"), **options)


def at(minutes_ago: int = 0, hours_ago: int = 0) -> datetime:
    moment = FETCHED - timedelta(minutes=minutes_ago, hours=hours_ago)
    if hours_ago:
        return moment.replace(minute=0, second=0)
    return moment.replace(second=0)


class TestSeedPage:
    @pytest.fixture
    def briefs(self, seed_page):
        return parse(seed_page, source="nos", url="https://example.org/buitenland").briefs

    def test_has_the_lead_and_seven_list_briefs_in_page_order(self, briefs):
        assert [(b.kind, b.city, b.agencies, b.age_text) for b in briefs] == [
            ("lead", "WASHINGTON", ["ANP", "RTR"], None),
            ("brief", "STRAATSBURG", ["ANP"], "16 minuten geleden"),
            ("brief", "DAVOS", ["ANP"], "29 minuten geleden"),
            ("brief", "DAVOS", ["ANP"], "33 minuten geleden"),
            ("brief", "DAVOS", ["ANP"], "38 minuten geleden"),
            ("brief", "BRUSSEL", ["ANP"], "2 uur geleden"),
            ("brief", "TOKIO", ["ANP", "AFP", "RTR"], "3 uur geleden"),
            ("brief", "MOSKOU", ["ANP", "RTR"], "3 uur geleden"),
        ]
        assert [b.position for b in briefs] == list(range(8))

    def test_lead_fields(self, briefs):
        lead = briefs[0]
        assert lead.headline == "VS bevestigen dat Noord-Koreanen tegen Oekraïne vechten"
        assert lead.text.startswith("Noord-Koreaanse troepen waren de afgelopen dagen")
        assert lead.text.endswith('NAVO-leider Mark Rutte sprak over een "significante escalatie".')
        assert lead.text.count("\n") == 2, "the lead keeps its three paragraphs"
        assert "WASHINGTON" not in lead.text
        # The page does not print the lead's publication time: it is not invented.
        assert lead.published_at is None and lead.published_at_precision is None
        assert lead.event_time == FETCHED

    def test_list_brief_times_follow_their_printed_age(self, briefs):
        assert [(b.published_at, b.published_at_precision) for b in briefs[1:]] == [
            (at(minutes_ago=16), "minute"),
            (at(minutes_ago=29), "minute"),
            (at(minutes_ago=33), "minute"),
            (at(minutes_ago=38), "minute"),
            (at(hours_ago=2), "hour"),
            (at(hours_ago=3), "hour"),
            (at(hours_ago=3), "hour"),
        ]
        assert all(b.event_time == b.published_at for b in briefs[1:])

    def test_common_fields(self, briefs):
        for brief in briefs:
            assert brief.source == "nos"
            assert brief.section == "Buitenland"
            assert brief.language == "nl"
            assert brief.fetched_at == FETCHED
            assert brief.url == "https://example.org/buitenland"
            assert brief.id == brief_id(brief.city, brief.agencies, brief.text)
            assert brief.headline is None or brief.kind == "lead"
        assert len({b.id for b in briefs}) == 8

    def test_list_brief_text_is_exactly_the_brief(self, briefs):
        straatsburg, davos = briefs[1], briefs[2]
        assert straatsburg.text.startswith("Het Europees Parlement laakt")
        assert straatsburg.text.endswith("woensdag heeft aangenomen.")
        assert davos.text == (
            'De Amerikaanse president Donald Trump wil "onmiddellijk onderhandelen" met Denemarken over de '
            'aankoop van Groenland. "Daar is niks mis mee", zei hij op het World Economic Forum in Davos.'
        )
        assert briefs[-1].text.endswith('zei Witkoff tegen CNBC.')
        assert all("geleden" not in b.text for b in briefs)

    def test_a_later_snapshot_gives_the_same_ids(self, seed_page, briefs):
        later = seed_page
        for before, after in [("16 minuten", "21 minuten"), ("29 minuten", "34 minuten"), ("2 uur", "3 uur")]:
            later = later.replace(f"{before} geleden", f"{after} geleden")
        snapshot = parse(later, fetched_at=FETCHED + timedelta(minutes=5), source="nos").briefs
        assert [b.id for b in snapshot] == [b.id for b in briefs]
        assert snapshot[1].published_at == briefs[1].published_at

    def test_crlf_line_endings_parse_the_same(self, seed_page, briefs):
        crlf = parse(seed_page.replace("\n", "\r\n"), source="nos", url="https://example.org/buitenland").briefs
        assert crlf == briefs

    def test_only_the_briefs_keep_takes_are_built_the_others_counted(self, seed_page, briefs):
        known = {brief.id for brief in briefs[:5]}
        page = parse(seed_page, source="nos", url="https://example.org/buitenland",
                     keep=lambda brief_id: brief_id not in known)
        assert page.left_out == 5
        assert page.briefs == briefs[5:], "the same briefs, positions on the page included"

    def test_a_page_whose_briefs_keep_all_refuses_is_no_error(self, seed_page):
        page = parse(seed_page, keep=lambda brief_id: False)
        assert (page.briefs, page.left_out) == ([], 8)

    def test_the_envelope_can_give_the_lead_its_publication_time(self, seed_page):
        published = FETCHED - timedelta(hours=1, minutes=3)
        lead = parse(seed_page, lead_published_at=published).briefs[0]
        assert (lead.published_at, lead.published_at_precision, lead.event_time) == (published, "second", published)


LIST_PAGE = """Kop van het hoofdartikel
{lead_city} (ANP) - Het hoofdartikel begint hier.
Meer uit Binnenland
DEN HAAG (ANP) – Het kabinet valt.
1 minuut geledenTEL AVIV (ANP/AFP) - Israël meldt iets.
7 minuten geledenSINT-PETERSBURG (RTR) — Een brief uit Rusland.
1 uur geleden'S-HERTOGENBOSCH (ANP) - Carnaval begint.
5 uur geledenZÜRICH (ANP/dpa) - Een Zwitserse brief met diacrieten: één, café, Grønland.
1 dag geledenSÃO PAULO (AFP) - Een Braziliaanse brief.
3 dagen geledenREYKJAVÍK (ANP) - Een IJslandse brief.
gisteren"""


class TestVariants:
    def test_cities_dashes_units_and_diacritics(self):
        briefs = parse(LIST_PAGE.format(lead_city="AMSTERDAM")).briefs
        assert [(b.city, b.agencies, b.age_text, b.published_at_precision) for b in briefs] == [
            ("AMSTERDAM", ["ANP"], None, None),
            ("DEN HAAG", ["ANP"], "1 minuut geleden", "minute"),
            ("TEL AVIV", ["ANP", "AFP"], "7 minuten geleden", "minute"),
            ("SINT-PETERSBURG", ["RTR"], "1 uur geleden", "hour"),
            ("'S-HERTOGENBOSCH", ["ANP"], "5 uur geleden", "hour"),
            ("ZÜRICH", ["ANP", "dpa"], "1 dag geleden", "day"),
            ("SÃO PAULO", ["AFP"], "3 dagen geleden", "day"),
            ("REYKJAVÍK", ["ANP"], "gisteren", "day"),
        ]
        assert briefs[0].section == "Binnenland"
        assert briefs[1].text == "Het kabinet valt."
        assert briefs[1].published_at == at(minutes_ago=1)
        assert briefs[2].published_at == at(minutes_ago=7)
        assert briefs[4].published_at == at(hours_ago=5)
        day_start = FETCHED.replace(hour=0, minute=0, second=0)
        assert briefs[5].published_at == day_start - timedelta(days=1)
        assert briefs[6].published_at == day_start - timedelta(days=3)
        assert briefs[7].published_at == day_start - timedelta(days=1)

    def test_day_precision_floors_in_the_fetch_time_zone(self):
        amsterdam = timezone(timedelta(hours=1))
        fetched = datetime(2026, 1, 21, 0, 30, tzinfo=amsterdam)  # 23:30 UTC the day before
        brief = parse("Meer uit Buitenland\nBERLIJN (ANP) - Iets.\ngisteren", fetched_at=fetched).briefs[0]
        assert brief.published_at == datetime(2026, 1, 20, tzinfo=amsterdam)

    def test_english_page(self):
        page = (
            "Storm hits the coast\n"
            "LONDON (AP/Reuters) - A storm hit the coast on Monday.\n"
            "It was the worst in years.\n"
            "More from World\n"
            "NEW YORK (AP) - Markets fell.\n"
            "5 minutes agoWASHINGTON (Reuters) - Congress met.\n"
            "2 hours agoPARIS (AFP) - Strikes went on.\n"
            "an hour agoTOKYO (Kyodo) - An earthquake struck.\n"
            "yesterday"
        )
        parsed = parse(page)
        assert parsed.language == "en"
        assert parsed.section == "World"
        assert [(b.city, b.age_text, b.published_at) for b in parsed.briefs] == [
            ("LONDON", None, None),
            ("NEW YORK", "5 minutes ago", at(minutes_ago=5)),
            ("WASHINGTON", "2 hours ago", at(hours_ago=2)),
            ("PARIS", "an hour ago", at(hours_ago=1)),
            ("TOKYO", "yesterday", FETCHED.replace(hour=0, minute=0, second=0) - timedelta(days=1)),
        ]
        assert parsed.briefs[0].headline == "Storm hits the coast"
        assert parsed.briefs[0].agencies == ["AP", "Reuters"]

    def test_page_with_only_a_list_under_its_header(self):
        briefs = parse("Meer uit Buitenland\nPARIJS (ANP) - Een.\n3 minuten geledenROME (ANP) - Twee.\n9 minuten geleden").briefs
        assert [(b.kind, b.city, b.position) for b in briefs] == [("brief", "PARIJS", 0), ("brief", "ROME", 1)]

    def test_page_with_only_a_list_and_no_header(self):
        briefs = parse("PARIJS (ANP) - Een.\n3 minuten geledenROME (ANP) - Twee.\n9 minuten geleden").briefs
        assert [(b.kind, b.city, b.age_text) for b in briefs] == [
            ("brief", "PARIJS", "3 minuten geleden"),
            ("brief", "ROME", "9 minuten geleden"),
        ]

    def test_page_with_no_list(self):
        parsed = parse("Kop\nBERLIJN (DPA) - Eerste alinea.\n\nTweede alinea, 3 uur geleden geschreven.")
        assert len(parsed.briefs) == 1
        lead = parsed.briefs[0]
        assert (lead.kind, lead.headline, lead.city) == ("lead", "Kop", "BERLIJN")
        assert lead.text == "Eerste alinea.\nTweede alinea, 3 uur geleden geschreven."
        assert parsed.section is None and parsed.language is None

    def test_envelope_section_applies_when_the_page_has_no_header(self):
        lead = parse("Kop\nBERLIJN (DPA) - Tekst.", section="Buitenland").briefs[0]
        assert lead.section == "Buitenland"

    def test_age_like_phrases_inside_a_brief_are_text(self):
        page = (
            "Meer uit Buitenland\n"
            'MADRID (ANP) - De trein stond 3 uur voor vertrek stil; "het was 3 uur geleden al duidelijk", zei een reiziger.\n'
            "12 minuten geledenLISSABON (ANP) - Iets anders.\n"
            "2 uur geleden"
        )
        briefs = parse(page).briefs
        assert [(b.city, b.age_text) for b in briefs] == [("MADRID", "12 minuten geleden"), ("LISSABON", "2 uur geleden")]
        assert briefs[0].text.endswith('"het was 3 uur geleden al duidelijk", zei een reiziger.')

    def test_a_brief_whose_text_ends_in_an_age_phrase(self):
        page = "Meer uit Buitenland\nOSLO (NTB) - Het gebeurde 2 uur geleden\n5 minuten geledenBERGEN (NTB) - Twee.\n1 uur geleden"
        briefs = parse(page).briefs
        assert [(b.city, b.text, b.age_text) for b in briefs] == [
            ("OSLO", "Het gebeurde 2 uur geleden", "5 minuten geleden"),
            ("BERGEN", "Twee.", "1 uur geleden"),
        ]

    def test_a_brief_without_its_age_keeps_a_null_time(self):
        page = "Meer uit Buitenland\nPARIJS (ANP) - Een.\nROME (ANP) - Twee.\n4 minuten geleden"
        briefs = parse(page).briefs
        assert [(b.city, b.age_text, b.published_at) for b in briefs] == [
            ("PARIJS", None, None),
            ("ROME", "4 minuten geleden", at(minutes_ago=4)),
        ]

    def test_a_dateline_without_text_is_rejected_and_the_rest_kept(self):
        page = "Meer uit Buitenland\nPARIJS (ANP) - \n4 minuten geledenROME (ANP) - Twee.\n5 minuten geleden"
        parsed = parse(page)
        assert [b.city for b in parsed.briefs] == ["ROME"]
        assert [(r.reason, r.text) for r in parsed.rejected] == [("empty_text", "PARIJS (ANP) -")]

    def test_control_characters_and_bom_are_removed(self):
        brief = parse("\ufeffMeer uit Buitenland\nPARIJS (ANP) - Een\x07 brief\x00.\n4 minuten geleden").briefs[0]
        assert brief.text == "Een brief."

    def test_absurd_ages_are_not_believed(self):
        brief = parse("Meer uit Buitenland\nPARIJS (ANP) - Een.\n99999 dagen geleden").briefs[0]
        assert (brief.text, brief.age_text) == ("Een.", "99999 dagen geleden")
        assert brief.published_at is None and brief.event_time == FETCHED

    def test_html_pages_become_plain_text(self):
        page = (
            "<html><head><title>x</title><script>var headline = 'DAVOS (ANP) - fake';</script></head><body>"
            "<h1>Kop &amp; meer</h1><p>BERLIJN (DPA) - De <b>eerste</b> alinea.</p>"
            "<div>Meer uit Buitenland</div><div>PARIJS (ANP) - Een &quot;citaat&quot;.</div>"
            "<div>4 minuten geleden</div><style>p { color: red }</style></body></html>"
        )
        briefs = parse(page).briefs
        assert [(b.city, b.headline, b.text) for b in briefs] == [
            ("BERLIJN", "Kop & meer", "De eerste alinea."),
            ("PARIJS", None, 'Een "citaat".'),
        ]
        assert all("<" not in b.text and "fake" not in b.text for b in briefs)

    def test_a_less_than_sign_in_plain_text_is_kept(self):
        assert parse("Meer uit Buitenland\nPARIJS (ANP) - Groei < 2 procent.\n4 minuten geleden").briefs[0].text == (
            "Groei < 2 procent."
        )

    def test_thousands_of_datelines_are_bounded(self):
        page = "Meer uit Buitenland\n" + "".join(f"PARIJS (ANP) - Bericht {i}.\n{i % 50 + 1} minuten geleden" for i in range(3000))
        parsed = parse(page, max_briefs=500)
        assert len(parsed.briefs) == 500
        assert [(r.reason, r.count) for r in parsed.rejected] == [("too_many_briefs", 2500)]


class TestUnparsablePages:
    @pytest.mark.parametrize("page", ["", "   \n\r\n  ", "\ufeff"])
    def test_empty(self, page):
        with pytest.raises(ParseError) as caught:
            parse(page)
        assert caught.value.reason == "empty_page"

    def test_no_dateline(self):
        with pytest.raises(ParseError) as caught:
            parse("Just a sentence.\nAnd another one, 3 minutes ago.")
        assert caught.value.reason == "no_briefs"

    def test_only_empty_datelines(self):
        with pytest.raises(ParseError) as caught:
            parse("Meer uit Buitenland\nPARIJS (ANP) -\n4 minuten geleden")
        assert caught.value.reason == "empty_text"

    def test_fetched_at_must_be_aware(self):
        with pytest.raises(ValueError):
            parse_page("PARIJS (ANP) - Een.", fetched_at=datetime(2026, 1, 1), source="x")


@pytest.mark.parametrize(
    ("text", "delta", "precision", "language"),
    [
        ("1 minuut geleden", timedelta(minutes=1), "minute", "nl"),
        ("45 minuten geleden", timedelta(minutes=45), "minute", "nl"),
        ("1 uur geleden", timedelta(hours=1), "hour", "nl"),
        ("2 dagen geleden", timedelta(days=2), "day", "nl"),
        ("1 dag geleden", timedelta(days=1), "day", "nl"),
        ("Gisteren", timedelta(days=1), "day", "nl"),
        ("a minute ago", timedelta(minutes=1), "minute", "en"),
        ("3 days ago", timedelta(days=3), "day", "en"),
        ("yesterday", timedelta(days=1), "day", "en"),
        ("2 UUR GELEDEN", timedelta(hours=2), "hour", "nl"),
        # letters a case-insensitive pattern matches for ASCII ones: dotless ı, long ſ, dotted İ, Kelvin sign
        ("ZOJUıST", timedelta(0), "minute", "nl"),
        ("yeſterday", timedelta(days=1), "day", "en"),
        ("5 MİNUTES AGO", timedelta(minutes=5), "minute", "en"),
        ("1 WEE\u212a GELEDEN", timedelta(weeks=1), "day", "nl"),
    ],
)
def test_parse_age(text, delta, precision, language):
    age = parse_age(text)
    assert (age.delta, age.precision, age.language) == (delta, precision, language)


@pytest.mark.parametrize("text", ["3 uur voor vertrek", "geleden", "3 uur", "morgen", ""])
def test_parse_age_rejects_what_is_not_an_age(text):
    assert parse_age(text) is None


@pytest.mark.parametrize("age", ["45 seconden geleden", "zojuist", "16 minuten geleden", "2 uur geleden",
                                 "gisteren", "3 dagen geleden", "2 weken geleden", "90 seconds ago"])
@pytest.mark.parametrize("fetched_at", [FETCHED, datetime(2026, 3, 1, 0, 0, 59, 999, tzinfo=timezone.utc),
                                        datetime(2026, 1, 21, 23, 59, 30, tzinfo=timezone(timedelta(hours=5, minutes=30)))])
def test_a_list_brief_is_published_at_its_fetch_time_minus_its_age_floored(age, fetched_at):
    brief = parse(f"DEN HAAG (ANP) - Het kabinet valt.\n{age}", fetched_at=fetched_at).briefs[0]
    expected = parse_age(age)
    assert brief.published_at == expected.published_at(fetched_at)
    assert brief.published_at_precision == expected.precision


def test_a_brief_too_long_to_cache_is_read_and_closed_by_its_age_all_the_same():
    # The caches count entries without weighing them: a long text is read afresh, never kept.
    long_text = "Het parlement debatteert urenlang over de begroting. " * 100
    page = (f"Meer uit Buitenland\nDEN HAAG (ANP) - Kort bericht.\n5 minuten geledenPARIJS (AFP) - {long_text}\n"
            "7 minuten geledenROME (ANP) - Nog een.\n9 minuten geleden")
    clear_caches()
    for _ in range(2):  # the second snapshot reads the long brief afresh, the short ones from the caches
        briefs = parse(page).briefs
        assert [(b.city, b.age_text) for b in briefs] == [
            ("DEN HAAG", "5 minuten geleden"), ("PARIJS", "7 minuten geleden"), ("ROME", "9 minuten geleden")]
        assert briefs[1].text == long_text.strip()
    assert _item.cache_info().currsize == 2  # DEN HAAG and ROME
    assert _dateline_ahead.cache_info().currsize == 1  # what follows the age of PARIJS's brief: ROME's dateline
