"""Topic planning and the interpretation of CreateTopics error codes."""

from __future__ import annotations

from tributary_devstack.topics import create_errors, partition_counts, plan_topics
from tributary_shared.core.topics import ALL_TOPICS, TopicSpec

A = TopicSpec("a", 12, "")
B = TopicSpec("b", 3, "")
C = TopicSpec("c", 6, "")


def test_missing_topics_are_created_and_small_ones_grown() -> None:
    plan = plan_topics([A, B, C], {"a": 12, "b": 1})
    assert plan.create == (C,)
    assert plan.grow == {"b": 3}
    assert plan.oversized == {}


def test_topics_with_more_partitions_are_reported_not_shrunk() -> None:
    plan = plan_topics([B], {"b": 8})
    assert plan.create == ()
    assert plan.grow == {}
    assert plan.oversized == {"b": (8, 3)}


def test_an_up_to_date_cluster_needs_nothing() -> None:
    existing = {spec.name: spec.partitions for spec in ALL_TOPICS}
    plan = plan_topics(ALL_TOPICS, existing)
    assert (plan.create, dict(plan.grow), dict(plan.oversized)) == ((), {}, {})


def test_already_exists_is_not_an_error_but_other_codes_are() -> None:
    errors = create_errors(
        [
            ("ok", 0, None),
            ("exists", 36, "Topic 'exists' already exists."),
            ("bad", 37, "Number of partitions is below 1."),
            ("old-version", 41),
        ]
    )
    assert errors == [
        "bad (error code 37: Number of partitions is below 1.)",
        "old-version (error code 41)",
    ]


def test_partition_counts_skip_topics_reported_with_an_error() -> None:
    described: list[dict[str, object]] = [
        {"error_code": 0, "topic": "a", "partitions": [{}, {}, {}]},
        {"error_code": 3, "topic": "missing", "partitions": []},
        {"topic": "b", "partitions": [{}]},
    ]
    assert partition_counts(described) == {"a": 3, "b": 1}


def test_every_project_topic_has_an_explicit_partition_count() -> None:
    assert ALL_TOPICS
    assert all(spec.partitions >= 1 for spec in ALL_TOPICS)
    assert len({spec.name for spec in ALL_TOPICS}) == len(ALL_TOPICS)
