"""The generated contract documents: structure, agreement with the code, no drift."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml

from tributary_agent_runner.__main__ import SPEC as AGENT_RUNNER_SPEC
from tributary_devtools.contract import GENERATED_FILES, build_asyncapi, render_asyncapi
from tributary_devtools.contract.__main__ import main
from tributary_devtools.contract.events_doc import REGENERATE, render_events_doc
from tributary_devtools.contract.topology import topic_of
from tributary_planner.__main__ import SPEC as PLANNER_SPEC
from tributary_shared.core.events import AnyEvent, event_catalog, home_topic
from tributary_shared.core.topics import ALL_TOPICS, DEAD_LETTERS
from tributary_shared.runtime.kafka.publisher import event_headers
from tributary_shared.runtime.worker import WorkerSpec
from tributary_synthesizer.__main__ import SPEC as SYNTHESIZER_SPEC

ROOT = Path(__file__).resolve().parents[2]
WORKER_SPECS: tuple[WorkerSpec, ...] = (PLANNER_SPEC, AGENT_RUNNER_SPEC, SYNTHESIZER_SPEC)


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return build_asyncapi()


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for token in ref[2:].split("/"):
        key = token.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict), f"{ref} does not resolve"
        assert key in node, f"{ref} does not resolve"
        node = node[key]
    return node


# -- the AsyncAPI document ------------------------------------------------------


def test_the_document_is_asyncapi_3_for_this_package(doc: dict[str, Any]) -> None:
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["title"] == "Tributary"
    assert doc["info"]["version"] == version("tributary-shared")
    assert doc["servers"]["local"]["host"] == "127.0.0.1:9092"
    assert doc["servers"]["local"]["protocol"] == "kafka"


def test_there_is_one_channel_per_topic_in_topic_order(doc: dict[str, Any]) -> None:
    channels = doc["channels"]
    assert list(channels) == [topic.name for topic in ALL_TOPICS]
    for topic in ALL_TOPICS:
        channel = channels[topic.name]
        assert channel["address"] == topic.name
        assert channel["description"] == topic.description
        assert channel["bindings"]["kafka"]["partitions"] == topic.partitions


def test_every_reference_in_the_document_resolves(doc: dict[str, Any]) -> None:
    refs = list(_refs(doc))
    assert refs
    for ref in refs:
        _resolve(doc, ref)


def test_channel_messages_resolve_to_components_with_payload_schemas(
    doc: dict[str, Any],
) -> None:
    for channel in doc["channels"].values():
        for message_id, ref in channel["messages"].items():
            assert ref == {"$ref": f"#/components/messages/{message_id}"}
            message = _resolve(doc, ref["$ref"])
            payload = _resolve(doc, message["payload"]["$ref"])
            assert payload["type"] == "object"


def test_each_event_is_a_message_of_its_home_channel_only(doc: dict[str, Any]) -> None:
    for event_type, model in event_catalog().items():
        home = home_topic(model.model_construct(type=event_type, workflow_id="wf"))
        holders = [name for name, ch in doc["channels"].items() if event_type in ch["messages"]]
        assert holders == [home], event_type
        assert doc["components"]["messages"][event_type]["name"] == event_type
    assert list(doc["channels"][DEAD_LETTERS.name]["messages"]) == ["DeadLetter"]


def test_operations_reference_their_channel_and_its_messages(doc: dict[str, Any]) -> None:
    assert doc["operations"]
    for operation_id, operation in doc["operations"].items():
        assert operation["action"] in {"send", "receive"}, operation_id
        channel_ref = operation["channel"]["$ref"]
        channel = _resolve(doc, channel_ref)
        assert operation["messages"], operation_id
        for message in operation["messages"]:
            prefix = f"{channel_ref}/messages/"
            assert message["$ref"].startswith(prefix), operation_id
            assert message["$ref"].removeprefix(prefix) in channel["messages"]


def test_consumers_receive_with_their_group_and_send_dead_letters(doc: dict[str, Any]) -> None:
    for spec in WORKER_SPECS:
        for topic in spec.topics:
            operation = doc["operations"][f"{spec.service}.receive.{topic}"]
            assert operation["bindings"]["kafka"]["groupId"]["enum"] == [spec.group_id]
        assert f"{spec.service}.send.{DEAD_LETTERS.name}" in doc["operations"]


def test_schemas_are_hoisted_and_draft_07_safe(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    assert list(schemas) == sorted(schemas)
    for model in event_catalog().values():
        assert model.__name__ in schemas

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            assert "$defs" not in node
            assert "$ref" not in node or len(node) == 1, node
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(schemas)


def test_the_headers_schema_lists_what_the_publisher_sets(doc: dict[str, Any]) -> None:
    headers = doc["components"]["schemas"]["EventHeaders"]
    for event_type, model in event_catalog().items():
        sent = event_headers(model.model_construct(type=event_type, workflow_id="wf"))
        assert list(headers["properties"]) == list(sent)
        assert doc["components"]["messages"][event_type]["headers"] == {
            "$ref": "#/components/schemas/EventHeaders"
        }


def test_the_yaml_is_deterministic_and_round_trips(doc: dict[str, Any]) -> None:
    rendered = render_asyncapi()
    assert rendered == render_asyncapi()
    assert yaml.safe_load(rendered) == doc


# -- the catalog ------------------------------------------------------------------


def test_the_catalog_is_the_decodable_union() -> None:
    union = get_args(get_args(AnyEvent)[0])
    assert set(union) == set(event_catalog().values())
    for event_type in event_catalog():
        assert topic_of(event_type).name in {topic.name for topic in ALL_TOPICS}


# -- events.md --------------------------------------------------------------------


def test_the_events_page_covers_every_topic_and_event() -> None:
    page = render_events_doc()
    for topic in ALL_TOPICS:
        assert f"## Topic {topic.name}\n" in page
    for event_type in event_catalog():
        assert f"### `{event_type}`\n" in page
    assert "## The envelope" in page
    assert "## Compatibility rules" in page
    assert "schema_version" in page
    assert "derived_event_id" in page


# -- the command line --------------------------------------------------------------
# That the committed copies match the code is checked, with every other generated
# document, in test_generated_docs.py.


def test_check_fails_on_missing_documents_and_write_fixes_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "docs/asyncapi.yaml is missing" in err
    assert REGENERATE in err

    assert main(["write", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for generated in GENERATED_FILES:
        assert f"wrote {generated.path}" in out
    assert main(["check", "--root", str(tmp_path)]) == 0
    # The contract's own command leaves the other generated documents to `make docs`.
    assert not (tmp_path / "docs" / "configuration.md").exists()

    events_md = tmp_path / "docs" / "events.md"
    events_md.write_text(events_md.read_text() + "hand edit\n")
    assert main(["check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "docs/events.md does not match the code" in err
    assert "-hand edit" in err
