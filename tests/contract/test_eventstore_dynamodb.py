"""The event store contract on the DynamoDB backend: moto in-process, and a real moto_server on 4566
reached through localstack-client (the same code path as LocalStack)."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from localstack_client.session import Session

from tests.contract.eventstore_contract import EventStoreContract, StoreFactory, price_event
from zvt_pipeline.config import load_settings
from zvt_pipeline.errors import ConfigError, InvalidMessage, PayloadTooLarge, StoreUnavailable
from zvt_pipeline.eventstore.base import ANY_VERSION, EventStore
from zvt_pipeline.eventstore.dynamodb import (
    MAX_BATCH,
    TABLE_DEFINITION,
    DynamoDBEventStore,
    create_table,
)
from zvt_pipeline.messages.envelope import Envelope
from zvt_pipeline.messages.events import AlertTriggered

REGION = "us-east-1"


def make_moto_store(table: str) -> EventStore:
    """A store on the in-process moto backend (the mock must be active in this process)."""
    return DynamoDBEventStore(boto3.session.Session().client("dynamodb", region_name=REGION), table)


def make_server_store(localstack_host: str, table: str) -> EventStore:
    """A store on the moto server, built the way ``from_settings`` builds it with LOCALSTACK_HOST set."""
    settings = load_settings(localstack_host=localstack_host, dynamodb_table=table, event_store="dynamodb")
    return DynamoDBEventStore.from_settings(settings)


def big_event(stream_id: str, size: int) -> Envelope:
    payload = AlertTriggered(severity="info", source="test", message="big", details={"blob": "x" * size})
    return Envelope.new(payload, stream_id=stream_id, correlation_id="run-1")


class DynamoDBExtras:
    """Backend-specific checks on top of the contract."""

    def test_table_definition_creates_the_documented_schema(self, store: EventStore) -> None:
        assert isinstance(store, DynamoDBEventStore)
        table = store.client.describe_table(TableName=store.table_name)["Table"]
        assert table["KeySchema"] == TABLE_DEFINITION["KeySchema"]
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        [index] = table["GlobalSecondaryIndexes"]
        assert index["IndexName"] == "by_correlation"
        assert index["Projection"] == {"ProjectionType": "KEYS_ONLY"}
        create_table(store.client, store.table_name)  # idempotent

    def test_run_event_keys_finds_a_runs_events_across_streams(self, store: EventStore, stream: str) -> None:
        assert isinstance(store, DynamoDBEventStore)
        other = stream + "-b"
        store.append(stream, [price_event(stream, 0), price_event(stream, 1)])
        store.append(other, [price_event(other, 2)])
        keys = store.run_event_keys("run-1")
        mine = [k for k in keys if k[0] in (stream, other)]
        assert mine == [(stream, 1), (stream, 2), (other, 1)]
        assert store.run_event_keys(f"run-{uuid.uuid4()}") == []

    def test_batch_larger_than_a_transaction_is_rejected(self, store: EventStore, stream: str) -> None:
        assert store.max_batch == MAX_BATCH == 32
        with pytest.raises(InvalidMessage, match="more than 32"):
            store.append(stream, [price_event(stream, i) for i in range(MAX_BATCH + 1)])
        recorded = store.append(stream, [price_event(stream, i) for i in range(MAX_BATCH)])
        assert [e.version for e in recorded] == list(range(1, MAX_BATCH + 1))

    def test_partial_duplicate_batch_is_rejected(self, store: EventStore, stream: str) -> None:
        first = price_event(stream, 0)
        store.append(stream, [first])
        with pytest.raises(InvalidMessage, match="event_id"):
            store.append(stream, [first, price_event(stream, 1)])
        with pytest.raises(InvalidMessage, match="event_id"):
            store.append(stream, [price_event(stream, 2), first])
        assert store.stream_version(stream) == 1

    def test_batch_over_the_transaction_byte_limit_is_rejected(self, store: EventStore, stream: str) -> None:
        store.max_event_bytes = 200_000
        events = [big_event(stream, 100_000) for _ in range(20)]  # ~4 MB twice over: event + global log
        with pytest.raises(PayloadTooLarge, match="DynamoDB transaction"):
            store.append(stream, events)
        assert store.stream_version(stream) == 0
        store.append(stream, events[:5])
        assert [e.version for e in store.read(stream)] == [1, 2, 3, 4, 5]

    def test_concurrent_any_version_appends_all_land(
        self, store_factory: StoreFactory, store: EventStore, stream: str
    ) -> None:
        """ANY_VERSION appends race on the head and the counter; each retries until it lands, once."""

        def write(writer: int) -> list[int]:
            mine = store_factory()
            return [
                mine.append(stream, [price_event(stream, writer * 100 + i)], expected_version=ANY_VERSION)[
                    0
                ].version
                or 0
                for i in range(6)
            ]

        with ThreadPoolExecutor(4) as pool:
            won = sorted(v for versions in pool.map(write, range(4)) for v in versions)
        assert won == list(range(1, 25))
        events = store.read(stream)
        assert [e.version for e in events] == won
        positions = [e.position or 0 for e in events]
        assert positions == sorted(positions) and len(set(positions)) == 24

    def test_losing_the_counter_race_too_often_raises_store_unavailable(
        self, store: EventStore, stream: str
    ) -> None:
        assert isinstance(store, DynamoDBEventStore)
        store.append(stream + "-a", [price_event(stream + "-a", 0)])

        class StaleCounter(DynamoDBEventStore):
            def _read_counter(self) -> int:
                return 0  # as if another append always took the positions between our read and write

        stale = StaleCounter(store.client, store.table_name, max_attempts=3, backoff_base_seconds=0.001)
        with pytest.raises(StoreUnavailable, match="3 times"):
            stale.append(stream, [price_event(stream, 1)])
        assert store.stream_version(stream) == 0 and store.read(stream) == []

    def test_missing_table_is_a_config_error(self, store: EventStore) -> None:
        assert isinstance(store, DynamoDBEventStore)
        missing = DynamoDBEventStore(store.client, f"zvt-missing-{uuid.uuid4().hex[:8]}")
        with pytest.raises(ConfigError, match="ZVT_DYNAMODB_TABLE"):
            missing.stream_version("order-x")


class TestDynamoDBEventStoreMoto(DynamoDBExtras, EventStoreContract):
    # moto's in-process mock lives in this process's memory: spawned writer processes would each get their
    # own empty mock, so the concurrent-writers test uses threads here (the moto-server class uses processes).
    concurrency = "thread"

    @pytest.fixture
    def store_factory(self, moto_in_process: None) -> StoreFactory:
        table = f"zvt-events-{uuid.uuid4().hex[:8]}"
        create_table(boto3.session.Session().client("dynamodb", region_name=REGION), table)
        return functools.partial(make_moto_store, table)


@pytest.fixture(scope="module")
def server_table(localstack_host: str) -> Iterator[str]:
    """A table of its own on the moto server, shared by the tests of this module (streams are unique)."""
    table = f"zvt-events-{uuid.uuid4().hex[:8]}"
    client = Session(localstack_host=localstack_host, region_name=REGION).client("dynamodb")
    create_table(client, table)
    yield table
    client.delete_table(TableName=table)


class TestDynamoDBEventStoreMotoServer(DynamoDBExtras, EventStoreContract):
    @pytest.fixture
    def store_factory(self, localstack_host: str, server_table: str) -> StoreFactory:
        return functools.partial(make_server_store, localstack_host, server_table)
