"""JSON Schemas of the topics' values, rendered from the pydantic models."""

from __future__ import annotations

import json

from ..models import TOPIC_MODELS, Envelope

__all__ = ["render_schemas"]


def render_schemas() -> dict[str, str]:
    """File name → JSON Schema text, one per topic in :data:`TOPIC_MODELS`."""
    rendered = {}
    for topic, model in TOPIC_MODELS.items():
        # Producers write the envelope, so its schema is what wirewatch accepts;
        # the other topics are written by wirewatch, so theirs is what it emits.
        mode = "validation" if model is Envelope else "serialization"
        schema = model.model_json_schema(mode=mode)
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": f"{topic}.schema.json", **schema}
        rendered[f"{topic}.schema.json"] = json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=False) + "\n"
    return rendered
