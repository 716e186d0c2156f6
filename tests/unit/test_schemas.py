"""The committed JSON Schemas match the models, and real records validate against them."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import jsonschema
import pytest

from wirewatch.core.parser import parse_page
from wirewatch.core.pipeline import RawRecord, split_record
from wirewatch.offline.schemas import render_schemas

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


@pytest.mark.parametrize("filename", sorted(render_schemas()))
def test_committed_schema_matches_the_model(filename):
    committed = (SCHEMAS / filename).read_text(encoding="utf-8")
    assert committed == render_schemas()[filename], f"run 'wirewatch schemas' to regenerate {filename}"


def test_every_schema_file_belongs_to_a_model():
    assert sorted(path.name for path in SCHEMAS.glob("*.schema.json")) == sorted(render_schemas())


def _validator(filename: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / filename).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def test_briefs_and_dead_letters_validate(seed_page):
    briefs = parse_page(seed_page, fetched_at=datetime(2026, 1, 21, 14, 40, tzinfo=timezone.utc), source="s").briefs
    brief_schema = _validator("wire.briefs.schema.json")
    for brief in briefs:
        brief_schema.validate(json.loads(brief.model_dump_json()))
    letter = split_record(RawRecord(value=b"\xff"), max_page_bytes=100, dead_letter_max_original_bytes=10).dead_letters[0]
    _validator("wire.raw.dlq.schema.json").validate(json.loads(letter.model_dump_json()))


def test_schema_rejects_a_brief_without_an_id(seed_page):
    brief = parse_page(seed_page, fetched_at=datetime(2026, 1, 21, tzinfo=timezone.utc), source="s").briefs[0]
    document = json.loads(brief.model_dump_json())
    del document["id"]
    with pytest.raises(jsonschema.ValidationError):
        _validator("wire.briefs.schema.json").validate(document)
