"""The topology declaration (tributary_shared.core.topology) and everything held to it.

The workers' subscriptions and the generated documents are derived from the
declaration; the deploy files are written by hand, and one drift test below
holds them to it.
"""

from __future__ import annotations

import pytest

from tests.unit.test_deploy_compose import PYTHON_SERVICES
from tests.unit.test_deploy_compose import services as compose_services
from tests.unit.test_deploy_k8s import of_kind
from tests.unit.test_deploy_settings import SERVICES, worker_spec
from tributary_devstack.services import SERVICES as STACK_SERVICES
from tributary_devtools.contract.architecture import (
    TOPOLOGY_BEGIN,
    TOPOLOGY_END,
    render_service_table,
    render_topic_table,
    splice_block,
)
from tributary_shared.core.events import event_catalog
from tributary_shared.core.topics import ALL_TOPICS
from tributary_shared.core.topology import (
    ROLES,
    ServiceRole,
    deployed_roles,
    role_of,
    subscribers_of,
    subscription,
    topic_of,
)

CONSUMERS = tuple(role for role in deployed_roles() if role.group_id is not None)


# --- the declaration -----------------------------------------------------------------------


def test_services_are_declared_once_and_name_only_known_event_types() -> None:
    names = [role.service for role in ROLES]
    assert len(names) == len(set(names))
    catalog = set(event_catalog())
    for role in ROLES:
        unknown = (set(role.emits) | set(role.consumes)) - catalog
        assert not unknown, f"{role.service}: unknown event types {sorted(unknown)}"
        assert role.does.strip(), role.service


def test_every_event_type_has_an_emitter_and_every_consumed_one_is_emitted() -> None:
    emitted = {event_type for role in ROLES for event_type in role.emits}
    assert set(event_catalog()) <= emitted, sorted(set(event_catalog()) - emitted)
    consumed = {event_type for role in ROLES for event_type in role.consumes}
    assert consumed <= emitted


def test_external_producers_have_no_consumer_group() -> None:
    for role in ROLES:
        if role.external:
            assert role.group_id is None, role.service
            assert not role.consumes, role.service


def test_a_subscription_reads_the_home_topics_of_what_the_service_consumes() -> None:
    assert CONSUMERS
    for role in CONSUMERS:
        sub = subscription(role.service)
        assert sub.group_id == role.group_id
        homes = {topic_of(event_type).name for event_type in role.consumes}
        assert set(sub.topics) == homes
        # In ALL_TOPICS order, each once.
        order = [topic.name for topic in ALL_TOPICS]
        assert list(sub.topics) == sorted(homes, key=order.index)


def test_a_service_without_a_consumer_group_has_no_subscription() -> None:
    with pytest.raises(LookupError, match="no consumer group"):
        subscription("gateway")
    with pytest.raises(LookupError, match="not a service"):
        role_of("billing")


def test_groups_are_distinct_per_service() -> None:
    groups = [role.group_id for role in CONSUMERS]
    assert len(groups) == len(set(groups))


# --- derived from it -----------------------------------------------------------------------


@pytest.mark.parametrize("role", CONSUMERS, ids=lambda role: role.service)
def test_worker_specs_take_group_and_topics_from_the_declaration(role: ServiceRole) -> None:
    spec = worker_spec(role.service)
    assert spec.service == role.service
    assert spec.group_id == role.group_id
    assert spec.topics == subscription(role.service).topics


@pytest.mark.parametrize("role", deployed_roles(), ids=lambda role: role.service)
def test_the_architecture_table_has_a_row_per_service_with_all_it_emits(
    role: ServiceRole,
) -> None:
    table = render_service_table()
    (row,) = [line for line in table.splitlines() if line.startswith(f"| {role.service} |")]
    emits = row.rsplit("|", 2)[-2]
    assert [e.strip(" `") for e in emits.split(",")] == list(role.emits)
    if role.group_id is not None:
        assert f"(`{role.group_id}`)" in row
        for event_type in role.consumes:
            assert f"`{event_type}`" in row.split("|")[2]


def test_external_producers_are_not_rows_of_the_architecture_table() -> None:
    table = render_service_table()
    for role in ROLES:
        if role.external:
            assert f"| {role.service} |" not in table


def test_splicing_replaces_only_the_marked_block() -> None:
    document = f"# Title\n\nprose\n{TOPOLOGY_BEGIN}\nold table\n{TOPOLOGY_END}\nmore prose\n"
    spliced = splice_block(document, "new table\n")
    assert spliced == f"# Title\n\nprose\n{TOPOLOGY_BEGIN}\nnew table\n{TOPOLOGY_END}\nmore prose\n"
    assert splice_block(spliced, "new table\n") == spliced


@pytest.mark.parametrize(
    "document",
    [
        "no markers\n",
        f"{TOPOLOGY_END}\n{TOPOLOGY_BEGIN}\n",
        f"{TOPOLOGY_BEGIN}\n{TOPOLOGY_END}\n{TOPOLOGY_BEGIN}\n{TOPOLOGY_END}\n",
    ],
    ids=["missing", "reversed", "twice"],
)
def test_splicing_refuses_to_guess_where_the_block_goes(document: str) -> None:
    with pytest.raises(ValueError, match="topology:begin"):
        splice_block(document, "table\n")


# --- the deploy files (hand-written; this is their one drift test) -----------------------


def test_deploy_files_follow_the_topology() -> None:
    """Kubernetes Deployments and Services, KEDA triggers and compose services, per role."""
    deployed = {role.service for role in deployed_roles()}
    problems: list[str] = []

    def expect(what: str, found: object, wanted: object) -> None:
        if found != wanted:
            problems.append(f"{what}: found {found}, the topology says {wanted}")

    expect("deploy/k8s Deployments", set(of_kind("Deployment")), deployed)
    expect("deploy/k8s Services", set(of_kind("Service")), deployed)
    # compose also runs the optional scripted LLM, which is no part of the event flow.
    python_services = set(compose_services()) & set(SERVICES)
    expect("compose.yaml services", python_services - {"scripted-llm"}, deployed)
    expect("images (services with a Dockerfile)", set(SERVICES) - {"scripted-llm"}, deployed)
    expect("compose Python services", set(PYTHON_SERVICES) - {"scripted-llm"}, deployed)

    # KEDA: per consumer group, one Kafka trigger per topic it reads, with its group.
    triggers: dict[str, set[tuple[str, str]]] = {}
    for scaled in of_kind("ScaledObject").values():
        target = scaled["spec"]["scaleTargetRef"]["name"]
        for trigger in scaled["spec"]["triggers"]:
            metadata = trigger["metadata"]
            pair = (metadata["consumerGroup"], metadata["topic"])
            triggers.setdefault(target, set()).add(pair)
    wanted = {
        role.service: {(sub.group_id, topic) for topic in sub.topics}
        for role in CONSUMERS
        for sub in [subscription(role.service)]
    }
    expect("KEDA (consumerGroup, topic) per Deployment", triggers, wanted)
    assert not problems, "deploy files drifted from tributary_shared.core.topology:\n" + "\n".join(
        problems
    )


def test_the_local_stack_runs_every_deployed_service() -> None:
    assert {spec.name for spec in STACK_SERVICES} == {r.service for r in deployed_roles()}


def test_the_deployment_topic_table_names_each_topics_consumer_groups() -> None:
    table = render_topic_table()
    for topic in ALL_TOPICS:
        row = next(line for line in table.splitlines() if f"`{topic.name}`" in line)
        assert f"| {topic.partitions} |" in row
        for role in subscribers_of(topic):
            assert f"`{role.group_id}`" in row


def test_a_hosted_service_runs_in_its_hosts_process_with_its_own_group() -> None:
    hosted = [role for role in ROLES if role.hosted_by is not None]
    assert hosted  # the callbacks' deliverer, in the planner
    for role in hosted:
        assert role not in deployed_roles()  # no image, Deployment or KEDA trigger
        assert role.hosted_by is not None
        host = worker_spec(role.hosted_by)
        [spec] = [spec for spec in host.hosts if spec.service == role.service]
        assert spec.group_id == role.group_id != host.group_id
        assert spec.topics == subscription(role.service).topics
    for role in CONSUMERS:
        hosts = {spec.service for spec in worker_spec(role.service).hosts}
        assert hosts == {r.service for r in hosted if r.hosted_by == role.service}
