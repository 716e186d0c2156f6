"""The changelog topics a worker declares before Faust starts, without a broker."""

from __future__ import annotations

import faust
import pytest

from wirewatch.service.kafka import TopicSpec
from wirewatch.settings import Settings
from wirewatch.topology.app import changelog_topics, create_app


def test_changelogs_take_the_cleanup_policy_and_retention_faust_gives_them():
    app = faust.App("changelog-specs", autodiscover=False, topic_partitions=5)
    app.Table("plain")
    app.Table("counts", default=int).tumbling(60)
    app.Table("expiring", default=int).tumbling(60, expires=3600)

    specs = {spec.name: spec for spec in changelog_topics(app)}

    assert specs == {
        "changelog-specs-plain-changelog": TopicSpec("changelog-specs-plain-changelog", {"cleanup.policy": "compact"}, 5),
        "changelog-specs-counts-changelog": TopicSpec(
            "changelog-specs-counts-changelog", {"cleanup.policy": "compact,delete"}, 5
        ),
        "changelog-specs-expiring-changelog": TopicSpec(
            "changelog-specs-expiring-changelog", {"cleanup.policy": "compact,delete", "retention.ms": "3600000"}, 5
        ),
    }


@pytest.mark.parametrize("stages", ["all", "briefs", "stories"])
def test_every_table_of_a_worker_has_its_changelog_declared(stages):
    wirewatch = create_app(Settings(stages=stages, topic_partitions=3))

    specs = changelog_topics(wirewatch.app)

    assert {spec.name for spec in specs} == {table.changelog_topic_name for table in wirewatch.app.tables.values()}
    assert all(spec.partitions == 3 and "compact" in spec.config["cleanup.policy"] for spec in specs)
