"""Routing decisions are sticky per order: a re-run of the route step (a retry, a resumed workflow, a
re-delivered message) must reuse the first decision, never route again. Otherwise the retry could pick a
different venue (the first fill moved the book) and place a second order there.

The first decision stored for a client order id wins (``SET NX``); every later run reads it back, so the
emitted ``order.routed`` (or ``order.failed(no_route)``) payload is identical too.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import orjson
import redis

from zvt_pipeline.messages.events import OrderFailed, OrderRouted
from zvt_pipeline.state.keys import Keys

RouteDecision = OrderRouted | OrderFailed


def _encode(decision: RouteDecision) -> bytes:
    return orjson.dumps({"type": decision.TYPE, "payload": decision.model_dump(mode="json")})


def _decode(raw: bytes) -> RouteDecision:
    data = orjson.loads(raw)
    cls = OrderRouted if data["type"] == OrderRouted.TYPE else OrderFailed
    return cls.model_validate(data["payload"])


class RouteDecisions(ABC):
    @abstractmethod
    def get(self, client_order_id: str) -> RouteDecision | None: ...

    @abstractmethod
    def put_if_absent(self, client_order_id: str, decision: RouteDecision) -> RouteDecision:
        """Store ``decision`` unless one exists; return the decision that stands."""


class MemoryRouteDecisions(RouteDecisions):
    """One process only (tests, single-process tools)."""

    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}

    def get(self, client_order_id: str) -> RouteDecision | None:
        raw = self._data.get(client_order_id)
        return None if raw is None else _decode(raw)

    def put_if_absent(self, client_order_id: str, decision: RouteDecision) -> RouteDecision:
        raw = self._data.setdefault(client_order_id, _encode(decision))
        return _decode(raw)


class RedisRouteDecisions(RouteDecisions):
    """``keys.route_decision(coid)``: a string, written once (``SET NX``), kept ``ttl_seconds``."""

    def __init__(self, client: redis.Redis, keys: Keys, ttl_seconds: int = 7 * 86_400) -> None:
        self._client = client
        self._keys = keys
        self._ttl = ttl_seconds

    def get(self, client_order_id: str) -> RouteDecision | None:
        raw = self._client.get(self._keys.route_decision(client_order_id))
        return None if raw is None else _decode(raw)

    def put_if_absent(self, client_order_id: str, decision: RouteDecision) -> RouteDecision:
        key = self._keys.route_decision(client_order_id)
        if self._client.set(key, _encode(decision), nx=True, ex=self._ttl):
            return decision
        raw = self._client.get(key)
        return decision if raw is None else _decode(raw)
