"""DynamoDB event store: one ``TransactWriteItems`` per append, with conditions doing what the Redis Lua
script does (compare the stream version, dedupe event ids, assign global positions).

Table design (one table, ``TABLE_DEFINITION``; ``template.yaml`` declares the same):

=====================  =================  ==========  =====================================================
item                   ``pk`` (S)         ``sk`` (N)  attributes
=====================  =================  ==========  =====================================================
event                  stream id          version     ``d`` event JSON, ``p`` position, ``e`` event id,
                                                      ``c`` correlation id (workflow run)
stream head            stream id          0           ``v`` current version
event-id guard         ``$id#<event_id>``  0           ``p`` position, ``v`` version, ``s`` stream id
global log             ``$all``           position    ``d`` event JSON, ``s`` stream id, ``v`` version
global counter         ``$position``      0           ``n`` last assigned position
=====================  =================  ==========  =====================================================

Stream ids cannot contain ``$`` (``Envelope.stream_id``'s pattern), so the reserved keys never collide.
The GSI ``by_correlation`` (``c``, ``p``; keys only) is sparse: only event items carry ``c``. It finds a
workflow run's events (``run_event_keys``); it is eventually consistent, fine for inspection, not for logic.

An append reads the counter (and, for ``ANY_VERSION``, the head), then writes in one transaction: the head
update conditioned on the version, a guard + event + log item per event (each ``attribute_not_exists``),
and the counter update conditioned on the value read. The cancellation reasons say what went wrong:
a stored guard -> the idempotent path (return the stored ``(version, position)`` pairs); the head -> a
``ConcurrencyConflict``; the counter -> another append took those positions: retry with jittered backoff.
The guards also make an ambiguous commit (timeout after DynamoDB applied the write) safe to retry.

Trade-off: the counter item serialises every append in the table. That one hot item caps throughput at about
one append per read-then-transact round trip across ALL streams (an estimate, not measured against AWS: tens
to low hundreds of appends/s; fewer under contention, as losers retry; batching events per append helps).
Pick the Redis backend for high write rates. In return the counter gives what catch-up readers need:
a position becomes visible only after every smaller position is committed (an append cannot read counter
``n`` before the append that wrote ``n`` committed), so ``read_all`` -- a strongly consistent Query on
``pk = "$all"``, not an eventually consistent GSI -- never skips an event that appears later. Sharded or
time-based positions would scale writes but give up exactly that gap-free, read-after-write global order.

Limits: a transaction holds at most 100 items (3 per event + head + counter -> ``MAX_BATCH`` = 32 events)
and 4 MB (each event's JSON is stored twice), both checked before anything is sent.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import boto3
import orjson
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, NoCredentialsError

from zvt_pipeline.config import Settings
from zvt_pipeline.errors import (
    ConcurrencyConflict,
    ConfigError,
    InvalidMessage,
    PayloadTooLarge,
    StoreUnavailable,
)
from zvt_pipeline.eventstore.base import EventStore
from zvt_pipeline.messages import codec
from zvt_pipeline.messages.envelope import Envelope

TABLE_DEFINITION: dict[str, Any] = {
    "AttributeDefinitions": [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "N"},
        {"AttributeName": "c", "AttributeType": "S"},
        {"AttributeName": "p", "AttributeType": "N"},
    ],
    "KeySchema": [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ],
    "BillingMode": "PAY_PER_REQUEST",
    "GlobalSecondaryIndexes": [
        {
            "IndexName": "by_correlation",
            "KeySchema": [
                {"AttributeName": "c", "KeyType": "HASH"},
                {"AttributeName": "p", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }
    ],
}
"""``client.create_table(TableName=name, **TABLE_DEFINITION)``."""

CORRELATION_INDEX = "by_correlation"
ALL_PK = "$all"
COUNTER_PK = "$position"
GUARD_PREFIX = "$id#"
HEAD_SK = 0

TRANSACTION_MAX_ITEMS = 100
ITEMS_PER_EVENT = 3  # guard, event, global log
MAX_BATCH = (TRANSACTION_MAX_ITEMS - 2) // ITEMS_PER_EVENT  # 2 = stream head + counter
TRANSACTION_MAX_BYTES = 4_000_000  # DynamoDB's limit is 4 MB; leave room for keys and attribute names
_ITEM_OVERHEAD_BYTES = 200

_UNAVAILABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionInProgressException",
    }
)
# Cancellation reasons that mean "someone else was writing the same items": retry the whole append.
_RACE_CODES = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})


class DynamoDBEventStore(EventStore):
    """Event store on one DynamoDB table (see the module docstring for the design)."""

    def __init__(
        self,
        client: Any,
        table_name: str,
        *,
        max_attempts: int = 50,
        backoff_base_seconds: float = 0.005,
        backoff_cap_seconds: float = 0.25,
        **kwargs: Any,
    ) -> None:
        """``client``: a boto3 DynamoDB low-level client. ``max_attempts``: how many times one append retries
        after losing the race for the global counter (or, with ``ANY_VERSION``, the stream head) before it
        raises ``StoreUnavailable``; the backoff between tries is "full jitter" from ``backoff_base_seconds``
        doubling up to ``backoff_cap_seconds``."""
        kwargs.setdefault("max_batch", MAX_BATCH)
        if kwargs["max_batch"] > MAX_BATCH:
            raise ConfigError(f"max_batch: DynamoDB transactions allow at most {MAX_BATCH} events per append")
        super().__init__(**kwargs)
        self.client = client
        self.table_name = table_name
        self.max_attempts = max_attempts
        self.backoff_base_seconds = backoff_base_seconds
        self.backoff_cap_seconds = backoff_cap_seconds

    @classmethod
    def from_settings(cls, settings: Settings) -> DynamoDBEventStore:
        return cls(make_client(settings), settings.dynamodb_table, max_event_bytes=settings.max_event_bytes)

    # --- append ---------------------------------------------------------------------------------------

    def _append(
        self, stream_id: str, events: list[tuple[UUID, bytes]], expected_version: int | None
    ) -> list[tuple[int, int]]:
        size = sum(2 * len(data) + _ITEM_OVERHEAD_BYTES for _, data in events)
        if size > TRANSACTION_MAX_BYTES:
            raise PayloadTooLarge(
                f"events: the batch needs about {size} bytes in one DynamoDB transaction, more than the "
                f"{TRANSACTION_MAX_BYTES} byte limit; append it in smaller batches",
                field="events",
            )
        correlations = [_correlation_id(data) for _, data in events]
        for attempt in range(self.max_attempts):
            head = self._stream_version(stream_id) if expected_version is None else expected_version
            counter = self._read_counter()
            items = self._transaction(stream_id, events, correlations, head, counter)
            try:
                with self._errors_mapped():
                    self.client.transact_write_items(TransactItems=items)
                return [(head + i, counter + i) for i in range(1, len(events) + 1)]
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                    raise
                reasons: list[dict[str, Any]] = list(exc.response.get("CancellationReasons") or [])  # type: ignore[arg-type]
            stored = self._resolve_cancellation(stream_id, events, expected_version, reasons)
            if stored is not None:
                return stored
            time.sleep(
                random.uniform(0, min(self.backoff_cap_seconds, self.backoff_base_seconds * 2**attempt))
            )
        raise StoreUnavailable(
            f"dynamodb: append to {stream_id!r} lost the race for the global position "
            f"{self.max_attempts} times in a row; retry later"
        )

    def _transaction(
        self,
        stream_id: str,
        events: list[tuple[UUID, bytes]],
        correlations: list[str],
        head: int,
        counter: int,
    ) -> list[dict[str, Any]]:
        """Items in a fixed order that ``_resolve_cancellation`` relies on: guards, head, events, log,
        counter."""
        table = self.table_name
        new_item = "attribute_not_exists(pk)"
        guards, stored, logged = [], [], []
        for i, ((event_id, data), correlation) in enumerate(zip(events, correlations, strict=True), 1):
            version, position, text = str(head + i), str(counter + i), data.decode()
            guards.append(
                {
                    "Put": {
                        "TableName": table,
                        "Item": {
                            "pk": {"S": f"{GUARD_PREFIX}{event_id}"},
                            "sk": {"N": "0"},
                            "p": {"N": position},
                            "v": {"N": version},
                            "s": {"S": stream_id},
                        },
                        "ConditionExpression": new_item,
                    }
                }
            )
            stored.append(
                {
                    "Put": {
                        "TableName": table,
                        "Item": {
                            "pk": {"S": stream_id},
                            "sk": {"N": version},
                            "d": {"S": text},
                            "p": {"N": position},
                            "e": {"S": str(event_id)},
                            "c": {"S": correlation},
                        },
                        "ConditionExpression": new_item,
                    }
                }
            )
            logged.append(
                {
                    "Put": {
                        "TableName": table,
                        "Item": {
                            "pk": {"S": ALL_PK},
                            "sk": {"N": position},
                            "d": {"S": text},
                            "s": {"S": stream_id},
                            "v": {"N": version},
                        },
                        "ConditionExpression": new_item,
                    }
                }
            )
        n = len(events)
        return [
            *guards,
            _conditional_set(table, stream_id, "v", head, head + n, return_old=True),
            *stored,
            *logged,
            _conditional_set(table, COUNTER_PK, "n", counter, counter + n, return_old=False),
        ]

    def _resolve_cancellation(
        self,
        stream_id: str,
        events: list[tuple[UUID, bytes]],
        expected_version: int | None,
        reasons: list[dict[str, Any]],
    ) -> list[tuple[int, int]] | None:
        """Stored pairs (idempotent re-append), an exception, or None = retry the append."""
        n = len(events)
        codes = [r.get("Code") or "None" for r in reasons]
        failed = {i for i, code in enumerate(codes) if code not in ("None", *_RACE_CODES)}
        counter_index, head_index = 3 * n + 1, n
        if reasons and failed <= {counter_index}:
            return None  # only the counter (or a transient conflict): another append took those positions
        # Checked in the Lua script's order: known first event, then the version, then a stray known id.
        stored = self._stored_pairs(events)
        if stored is not None:
            return stored
        if expected_version is not None and (head_index in failed or not reasons):
            old = reasons[head_index].get("Item") if head_index in failed else None
            actual = int(old["v"]["N"]) if old and "v" in old else self._stream_version(stream_id)
            if actual != expected_version:
                raise ConcurrencyConflict(stream_id, expected_version, actual)
        duplicate = next((i for i in sorted(failed) if i < n), None)
        if duplicate is not None:
            raise InvalidMessage(
                f"event_id: {events[duplicate][0]} is already stored in another batch "
                "(a batch is retried whole or not at all)",
                field="event_id",
            )
        return None  # the head moved under an ANY_VERSION append: read it again

    def _stored_pairs(self, events: list[tuple[UUID, bytes]]) -> list[tuple[int, int]] | None:
        """``(version, position)`` of every event if the first one is stored, else None."""
        guards = self._get_guards([event_id for event_id, _ in events])
        first = events[0][0]
        if first not in guards:
            return None
        missing = next((event_id for event_id, _ in events if event_id not in guards), None)
        if missing is not None:
            raise InvalidMessage(
                f"event_id: {missing} is not stored but {first} is (a batch is retried whole or not at all)",
                field="event_id",
            )
        return [guards[event_id] for event_id, _ in events]

    def _get_guards(self, event_ids: list[UUID]) -> dict[UUID, tuple[int, int]]:
        by_key = {f"{GUARD_PREFIX}{eid}": eid for eid in event_ids}
        keys = [{"pk": {"S": pk}, "sk": {"N": "0"}} for pk in by_key]
        found: dict[UUID, tuple[int, int]] = {}
        request: dict[str, Any] = {
            self.table_name: {"Keys": keys, "ConsistentRead": True, "ProjectionExpression": "pk, v, p"}
        }
        while request:
            with self._errors_mapped():
                reply = self.client.batch_get_item(RequestItems=request)
            for item in reply.get("Responses", {}).get(self.table_name, []):
                found[by_key[item["pk"]["S"]]] = (int(item["v"]["N"]), int(item["p"]["N"]))
            request = reply.get("UnprocessedKeys") or {}
        return found

    def _read_counter(self) -> int:
        with self._errors_mapped():
            reply = self.client.get_item(
                TableName=self.table_name,
                Key={"pk": {"S": COUNTER_PK}, "sk": {"N": "0"}},
                ConsistentRead=True,
                ProjectionExpression="n",
            )
        item = reply.get("Item")
        return int(item["n"]["N"]) if item else 0

    # --- reads ----------------------------------------------------------------------------------------

    def _read(self, stream_id: str, after_version: int, limit: int | None) -> list[Envelope]:
        items = self._query(stream_id, after_version, limit, "sk, d, p")
        return [self._decode(item, int(item["sk"]["N"]), int(item["p"]["N"])) for item in items]

    def _read_all(self, after_position: int, limit: int) -> list[Envelope]:
        items = self._query(ALL_PK, after_position, limit, "sk, d, v")
        return [self._decode(item, int(item["v"]["N"]), int(item["sk"]["N"])) for item in items]

    def _stream_version(self, stream_id: str) -> int:
        with self._errors_mapped():
            reply = self.client.get_item(
                TableName=self.table_name,
                Key={"pk": {"S": stream_id}, "sk": {"N": str(HEAD_SK)}},
                ConsistentRead=True,
                ProjectionExpression="v",
            )
        item = reply.get("Item")
        return int(item["v"]["N"]) if item else 0

    def run_event_keys(self, correlation_id: str) -> list[tuple[str, int]]:
        """``(stream_id, version)`` of every event of a workflow run, in global order.

        Uses the ``by_correlation`` GSI, so it is eventually consistent: a just-appended event may be
        missing for a moment. Read the events themselves with ``read``."""
        keys: list[tuple[str, int]] = []
        query: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": CORRELATION_INDEX,
            "KeyConditionExpression": "c = :c",
            "ExpressionAttributeValues": {":c": {"S": correlation_id}},
        }
        while True:
            with self._errors_mapped():
                reply = self.client.query(**query)
            keys += [(item["pk"]["S"], int(item["sk"]["N"])) for item in reply.get("Items", [])]
            if "LastEvaluatedKey" not in reply:
                return keys
            query["ExclusiveStartKey"] = reply["LastEvaluatedKey"]

    def _query(self, pk: str, after: int, limit: int | None, projection: str) -> list[dict[str, Any]]:
        """Items of partition ``pk`` with ``sk > after``, in ``sk`` order, strongly consistent."""
        items: list[dict[str, Any]] = []
        query: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND sk > :after",
            "ExpressionAttributeValues": {":pk": {"S": pk}, ":after": {"N": str(after)}},
            "ProjectionExpression": projection,
            "ConsistentRead": True,
        }
        while limit is None or len(items) < limit:
            if limit is not None:
                query["Limit"] = limit - len(items)
            with self._errors_mapped():
                reply = self.client.query(**query)
            items += reply.get("Items", [])
            if "LastEvaluatedKey" not in reply:
                break
            query["ExclusiveStartKey"] = reply["LastEvaluatedKey"]
        return items

    def _decode(self, item: dict[str, Any], version: int, position: int) -> Envelope:
        return codec.decode(
            item["d"]["S"], max_bytes=self.max_event_bytes, version=version, position=position
        )

    # --- errors ---------------------------------------------------------------------------------------

    @contextmanager
    def _errors_mapped(self) -> Iterator[None]:
        """botocore errors -> ours. ``TransactionCanceledException`` passes through for ``_append``."""
        try:
            yield
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException":
                raise ConfigError(
                    f"ZVT_DYNAMODB_TABLE: table {self.table_name!r} does not exist (create it from "
                    "template.yaml, or with zvt_pipeline.eventstore.dynamodb.create_table)"
                ) from exc
            if code in _UNAVAILABLE_CODES:
                raise StoreUnavailable(f"dynamodb: {code}: {exc}") from exc
            raise
        except NoCredentialsError as exc:
            raise ConfigError(f"AWS_ACCESS_KEY_ID: no AWS credentials found ({exc})") from exc
        except HTTPClientError as exc:
            raise StoreUnavailable(f"dynamodb: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreUnavailable(f"dynamodb: {exc}") from exc


def _conditional_set(
    table: str, pk: str, attr: str, old: int, new: int, *, return_old: bool
) -> dict[str, Any]:
    """Update ``attr`` of item (pk, 0) from ``old`` to ``new``; ``old`` 0 means "not there yet"."""
    update: dict[str, Any] = {
        "TableName": table,
        "Key": {"pk": {"S": pk}, "sk": {"N": "0"}},
        "UpdateExpression": f"SET {attr} = :new",
        "ConditionExpression": f"attribute_not_exists({attr})" if old == 0 else f"{attr} = :old",
        "ExpressionAttributeValues": {":new": {"N": str(new)}},
    }
    if old:
        update["ExpressionAttributeValues"][":old"] = {"N": str(old)}
    if return_old:
        update["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    return {"Update": update}


def _correlation_id(data: bytes) -> str:
    """The envelope's correlation id, for the GSI attribute (the base class hands over encoded bytes)."""
    return str(orjson.loads(data)["correlation_id"])


def make_client(settings: Settings) -> Any:
    """A DynamoDB client: through ``localstack-client`` when ``LOCALSTACK_HOST`` is set (LocalStack or
    moto_server), else plain boto3, which honours ``AWS_ENDPOINT_URL`` (``settings.aws_endpoint_url``)."""
    config = Config(
        retries={"mode": "standard", "max_attempts": 5},
        connect_timeout=3,
        read_timeout=10,
        max_pool_connections=32,
    )
    if settings.localstack_host:
        from localstack_client.session import Session

        session = Session(localstack_host=settings.localstack_host, region_name=settings.aws_region)
        return session.client("dynamodb", config=config)
    # A Session per client: boto3's default session is not thread-safe, its clients are.
    return boto3.session.Session().client(
        "dynamodb", region_name=settings.aws_region, endpoint_url=settings.aws_endpoint_url, config=config
    )


def create_table(client: Any, name: str, *, wait_seconds: int = 120) -> None:
    """Create the event table from ``TABLE_DEFINITION`` unless it exists; return when it is ACTIVE."""
    try:
        client.create_table(TableName=name, **TABLE_DEFINITION)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise
    client.get_waiter("table_exists").wait(
        TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": max(1, wait_seconds)}
    )
