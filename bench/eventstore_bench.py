"""Event store throughput on this machine: appends/s and read_all events/s, per backend.

    .venv/bin/python bench/eventstore_bench.py --n 200

- Redis: ``REDIS_URL`` (or redis://127.0.0.1:6379/0), under a unique key prefix removed afterwards.
- DynamoDB: a moto server on 127.0.0.1:4566 (reused if one answers, else started for the run and stopped),
  reached through localstack-client, on a fresh table deleted afterwards. These numbers measure moto's
  Python emulation (which copies the whole table on every transaction), not DynamoDB's service.

Prints one JSON object. Nothing here is asserted: it reports what it measured.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))  # for tests.aws_fixtures (the moto server launcher)

from zvt_pipeline.eventstore.base import NO_STREAM, EventStore  # noqa: E402
from zvt_pipeline.messages.envelope import Envelope  # noqa: E402
from zvt_pipeline.messages.events import PriceUpdated  # noqa: E402


def price_event(stream_id: str, n: int) -> Envelope:
    payload = PriceUpdated(venue="paper", symbol="BTC/USDT", price=Decimal("60000.5") + n)
    return Envelope.new(payload, stream_id=stream_id, correlation_id=f"bench-{stream_id}")


def rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else float("inf")


def measure(store: EventStore, n: int, batch: int) -> dict[str, Any]:
    """Single-event appends with expected_version, ``batch``-event appends, then read_all of them all."""
    run = uuid.uuid4().hex[:8]
    store.stream_version(f"bench-{run}-warmup")  # open the connection outside the timed loops

    stream = f"bench-{run}-single"
    events = [price_event(stream, i) for i in range(n)]
    first = store.append(stream, events[:1], expected_version=NO_STREAM)
    after_position = (first[0].position or 1) - 1
    started = time.perf_counter()
    for i, ev in enumerate(events[1:], 1):
        store.append(stream, [ev], expected_version=i)
    single_seconds = time.perf_counter() - started

    batches = max(1, n // batch)
    streams = [f"bench-{run}-batch-{b}" for b in range(batches)]
    payloads = [[price_event(s, i) for i in range(batch)] for s in streams]
    started = time.perf_counter()
    for s, evs in zip(streams, payloads, strict=True):
        store.append(s, evs, expected_version=NO_STREAM)
    batch_seconds = time.perf_counter() - started

    started = time.perf_counter()
    read = sum(1 for _ in store.iter_all(after_position, batch=1000))
    read_seconds = time.perf_counter() - started
    return {
        "single_appends": n - 1,
        "single_appends_per_s": rate(n - 1, single_seconds),
        "batch_size": batch,
        "batch_appends": batches,
        "batch_appends_per_s": rate(batches, batch_seconds),
        "batch_events_per_s": rate(batches * batch, batch_seconds),
        "read_all_events": read,
        "read_all_events_per_s": rate(read, read_seconds),
    }


@contextmanager
def redis_store() -> Iterator[tuple[EventStore, dict[str, Any]]]:
    import redis

    from zvt_pipeline.eventstore.redis import RedisEventStore
    from zvt_pipeline.state.keys import Keys

    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    prefix = f"bench{uuid.uuid4().hex[:8]}:"
    client = redis.Redis.from_url(url)
    try:
        yield RedisEventStore(client, keys=Keys(prefix)), {"server": url.split("@")[-1]}
    finally:
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            client.delete(key)
        client.close()


@contextmanager
def dynamodb_store() -> Iterator[tuple[EventStore, dict[str, Any]]]:
    import tempfile

    from localstack_client.session import Session
    from tests.aws_fixtures import MOTO_HOST, MOTO_PORT, server_answers, start_moto_server, stop_process

    from zvt_pipeline.eventstore.dynamodb import DynamoDBEventStore, create_table

    host = f"{MOTO_HOST}:{MOTO_PORT}"
    proc = None
    if not server_answers(f"http://{host}"):
        proc = start_moto_server(Path(tempfile.mkdtemp(prefix="zvt-bench-")) / "moto_server.log")
    client = Session(localstack_host=host, region_name="us-east-1").client("dynamodb")
    table = f"zvt-bench-{uuid.uuid4().hex[:8]}"
    try:
        create_table(client, table)
        info = {"server": f"moto_server http://{host}", "started_for_this_run": proc is not None}
        yield DynamoDBEventStore(client, table), info
    finally:
        try:
            client.delete_table(TableName=table)
        finally:
            if proc is not None:
                stop_process(proc)


BACKENDS: dict[str, Callable[[], Any]] = {"redis": redis_store, "dynamodb": dynamodb_store}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--n", type=int, default=200, help="single-event appends, and events in batches (default 200)"
    )
    parser.add_argument("--batch", type=int, default=10, help="events per batch append (default 10)")
    parser.add_argument(
        "--backends", default="redis,dynamodb", help="comma-separated: redis, dynamodb (default both)"
    )
    args = parser.parse_args(argv)
    names = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in names if b not in BACKENDS]
    if unknown or args.n < 2 or args.batch < 1:
        parser.error(f"--backends {unknown} unknown" if unknown else "--n must be >= 2 and --batch >= 1")

    report: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "n": args.n,
    }
    for name in names:
        with BACKENDS[name]() as (store, info):
            report[name] = {**info, **measure(store, args.n, args.batch)}
    sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
