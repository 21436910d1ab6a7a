"""Risk reservations in Redis: the atomic part of the pre-trade check, and the releases after it.

``reserve`` checks, in one atomic step across any number of processes: duplicate ``client_order_id``
(the order index), the per-account submit rate (sliding window), and free balance (cash minus what open
orders hold, per currency, or the long position for a sell that only reduces it); then it writes the
reservation, the account's reserved total and the order index. ``release_fill`` / ``release_all`` give
held amounts back, each exactly once per trade id / reason key.

Why WATCH/MULTI and not a Lua script: money must stay exact, and Lua numbers in Redis are doubles
(``0.1 + 0.2 ~= 0.3`` there, and ``HINCRBYFLOAT`` rounds to a long double too). So every amount is stored
as its exact decimal text and all arithmetic happens in Python ``Decimal`` (80 significant digits, far
more than the 38 digits a message can carry). Atomicity comes from an optimistic transaction: WATCH every
key the decision reads, read them, decide, and write inside MULTI/EXEC; if any watched key changed in
between (another process reserved, the portfolio moved the balance), EXEC fails and the attempt is
retried on fresh data, at most ``max_attempts`` times (then ``ReservationContention``, a retryable error).
Each attempt costs three round trips (WATCH, one pipelined read, MULTI/EXEC); someone's EXEC always wins,
so the system as a whole always makes progress.

Redis layout (``state/keys.py``):
- ``order(coid)`` hash, the order index: ``run_id``, ``account_id``, ``symbol``, ``status`` (risk writes
  ``validated`` or ``rejected``; later steps may move it on), ``risk_decision`` (never changed), ``checks``;
  rejections add ``rule``, ``reason``, ``details`` (JSON); validations add ``reservation_currency``,
  ``reservation_amount``. A retry of the same run reads its decision back from here.
- ``reservation(coid)`` hash: ``account``, ``currency``, ``initial``, ``remaining``, ``held_against``,
  ``symbol``, ``run_id``, and one marker field per release (``fill:<trade_id>``, ``all:<reason_key>``)
  holding the amount that release gave back.
- ``reserved(account)`` hash: currency -> total still held by the account's open orders.
- ``submit_rate(account)`` sorted set: client_order_id scored by its acceptance time in ms.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_DOWN, Decimal, localcontext
from typing import Any

import redis

from zvt_pipeline.errors import RetryableError, StoreUnavailable
from zvt_pipeline.messages.commands import OrderSpec
from zvt_pipeline.messages.events import Reservation
from zvt_pipeline.messages.types import MAX_DECIMAL_PLACES
from zvt_pipeline.risk.engine import EXACT, HeldAgainst, fmt
from zvt_pipeline.risk.snapshot import ZERO, parse_positions, to_decimal
from zvt_pipeline.state.keys import Keys

_QUANTUM = Decimal(1).scaleb(-MAX_DECIMAL_PLACES)

VALIDATED = "validated"
REJECTED = "rejected"


class ReservationContention(RetryableError):
    """Too many concurrent writers on the same account: the optimistic transaction kept losing."""

    code = "reservation_contention"


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``max_orders`` accepted per account within any ``window_seconds``."""

    max_orders: int
    window_seconds: float


@dataclass(frozen=True, slots=True)
class ReserveResult:
    ok: bool
    reservation: Reservation | None = None
    replayed: bool = False
    """True when this run's decision was already stored (a retry): nothing new was written."""
    checks: tuple[str, ...] = ()
    rule: str | None = None
    reason: str = ""
    details: dict[str, str] = field(default_factory=dict)


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _str_map(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in raw.items()}


def stored_decision(index: Mapping[str, str]) -> ReserveResult:
    """The decision recorded in an order index entry, as a replayed result."""
    checks = tuple(c for c in index.get("checks", "").split(",") if c)
    if index.get("risk_decision") == VALIDATED:
        reservation = Reservation(
            currency=index["reservation_currency"], amount=Decimal(index["reservation_amount"])
        )
        return ReserveResult(ok=True, reservation=reservation, replayed=True, checks=checks)
    return ReserveResult(
        ok=False,
        replayed=True,
        checks=checks,
        rule=index.get("rule", "unknown"),
        reason=index.get("reason", ""),
        details=json.loads(index.get("details") or "{}"),
    )


def replay_or_duplicate(index: Mapping[str, str], order: OrderSpec, run_id: str) -> ReserveResult | None:
    """For an existing index entry: this run's stored decision (a retry), or a duplicate rejection.
    ``None`` when the client_order_id is new."""
    if not index:
        return None
    if index.get("run_id") == run_id and index.get("risk_decision") in (VALIDATED, REJECTED):
        return stored_decision(index)
    owner = index.get("run_id", "?")
    return ReserveResult(
        ok=False,
        rule="duplicate_client_order_id",
        reason=(
            f"client_order_id {order.client_order_id} is already used by run {owner} "
            f"(status {index.get('status', '?')})"
        ),
        details={"client_order_id": order.client_order_id, "existing_run_id": owner},
    )


def _quantize_down(value: Decimal) -> Decimal:
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_DECIMAL_PLACES:
        value = value.quantize(_QUANTUM, rounding=ROUND_DOWN)
    return value


class Reservations:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        max_attempts: int = 200,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``max_attempts`` bounds the optimistic-transaction retries of one call under contention."""
        self._client = client
        self._keys = keys
        self._max_attempts = max_attempts
        self._sleep = sleep

    # --- the transaction loop ----------------------------------------------------------------------------

    def _transact(self, attempt: Callable[[Any], Any], what: str) -> Any:
        for n in range(self._max_attempts):
            with self._client.pipeline(transaction=True) as pipe:
                try:
                    return attempt(pipe)
                except redis.WatchError:
                    # Jittered backoff so that contending processes stop colliding in lockstep.
                    self._sleep(random.uniform(0, 0.0005 * min(2**n, 64)))
                except redis.ConnectionError as exc:
                    raise StoreUnavailable(f"redis: {what}: {exc}") from exc
        raise ReservationContention(f"{what}: still conflicting after {self._max_attempts} attempts")

    def _read(self, commands: Callable[[Any], None]) -> list[Any]:
        """One pipelined read on a second connection (valid under WATCH: any write after the WATCH, from
        any connection, still fails the EXEC)."""
        reader = self._client.pipeline(transaction=False)
        commands(reader)
        return list(reader.execute())

    # --- reserve -----------------------------------------------------------------------------------------

    def reserve(
        self,
        order: OrderSpec,
        reservation: Reservation,
        run_id: str,
        now: datetime,
        rate_limit: RateLimit | None,
        *,
        held_against: HeldAgainst = "cash",
        checks: Sequence[str] = (),
    ) -> ReserveResult:
        """Atomically: duplicate client_order_id, submit rate, free balance; then hold ``reservation``.

        A retry by the same ``run_id`` returns the stored decision (validated with the same reservation,
        or the same rejection) and writes nothing. Rejections by ``rate_limit`` and ``free_balance`` are
        recorded in the order index too, so a retry repeats them instead of reserving late."""
        keys = self._keys
        coid, account, currency = order.client_order_id, order.account_id, reservation.currency
        order_key, rsv_key = keys.order(coid), keys.reservation(coid)
        rate_key, reserved_key = keys.submit_rate(account), keys.reserved(account)
        source_key = keys.position(account) if held_against == "position" else keys.balance(account)
        now_ms = int(now.timestamp() * 1000)
        required = reservation.amount

        def attempt(pipe: Any) -> ReserveResult:
            pipe.watch(order_key, rate_key, reserved_key, source_key)

            def reads(r: Any) -> None:
                r.hgetall(order_key)
                r.hget(reserved_key, currency)
                if held_against == "position":
                    r.hgetall(source_key)
                else:
                    r.hget(source_key, currency)
                if rate_limit is not None:
                    cutoff = now_ms - int(rate_limit.window_seconds * 1000)
                    r.zcount(rate_key, f"({cutoff}", "+inf")

            index_raw, reserved_raw, source_raw, *rate = self._read(reads)
            prior = replay_or_duplicate(_str_map(index_raw), order, run_id)
            if prior is not None:
                pipe.unwatch()
                return prior

            passed = [*checks, "duplicate_client_order_id"]
            if rate_limit is not None:
                count = int(rate[0])
                if count >= rate_limit.max_orders:
                    return self._record_rejection(
                        pipe,
                        order,
                        run_id,
                        now,
                        passed,
                        rule="rate_limit",
                        reason=(
                            f"{count} orders accepted for account {account} in the last "
                            f"{rate_limit.window_seconds:g} s >= max {rate_limit.max_orders}"
                        ),
                        details={
                            "count": str(count),
                            "max": str(rate_limit.max_orders),
                            "window_seconds": f"{rate_limit.window_seconds:g}",
                        },
                    )
            passed.append("rate_limit")

            with localcontext(EXACT):
                held = to_decimal(reserved_raw) or ZERO
                if held_against == "position":
                    positions = parse_positions(source_raw)
                    total = sum((a for (_, s), (a, _) in positions.items() if s == order.symbol), ZERO)
                    available, source = max(total, ZERO), f"long position {order.symbol}"
                else:
                    available, source = to_decimal(source_raw) or ZERO, "balance"
                free = available - held
                if free < required:
                    return self._record_rejection(
                        pipe,
                        order,
                        run_id,
                        now,
                        passed,
                        rule="free_balance",
                        reason=(
                            f"free {currency} {fmt(free)} < required {fmt(required)} {currency} "
                            f"({source} {fmt(available)}, reserved {fmt(held)})"
                        ),
                        details={
                            "currency": currency,
                            "free": fmt(free),
                            "required": fmt(required),
                            "available": fmt(available),
                            "reserved": fmt(held),
                            "held_against": held_against,
                        },
                    )
                new_held = held + required
            passed.append("free_balance")

            pipe.multi()
            pipe.hset(
                order_key,
                mapping={
                    **self._index_fields(order, run_id, now, VALIDATED, passed),
                    "reservation_currency": currency,
                    "reservation_amount": fmt(required),
                },
            )
            pipe.hset(
                rsv_key,
                mapping={
                    "account": account,
                    "currency": currency,
                    "initial": fmt(required),
                    "remaining": fmt(required),
                    "held_against": held_against,
                    "symbol": order.symbol,
                    "run_id": run_id,
                },
            )
            pipe.hset(reserved_key, currency, fmt(new_held))
            if rate_limit is not None:
                window_ms = int(rate_limit.window_seconds * 1000)
                pipe.zadd(rate_key, {coid: now_ms})
                pipe.zremrangebyscore(rate_key, "-inf", now_ms - window_ms)
                pipe.pexpire(rate_key, window_ms * 2 + 1000)
            pipe.execute()
            return ReserveResult(ok=True, reservation=reservation, checks=tuple(passed))

        result: ReserveResult = self._transact(attempt, f"reserve {coid}")
        return result

    def record_rejection(
        self,
        order: OrderSpec,
        run_id: str,
        now: datetime,
        *,
        rule: str,
        reason: str,
        details: Mapping[str, str],
        checks: Sequence[str] = (),
    ) -> ReserveResult:
        """Record a rejection decided outside Redis (by the pure engine) in the order index, unless the
        client_order_id is already there: then return that entry's decision (a retry, or a duplicate)."""
        order_key = self._keys.order(order.client_order_id)

        def attempt(pipe: Any) -> ReserveResult:
            pipe.watch(order_key)
            prior = replay_or_duplicate(_str_map(pipe.hgetall(order_key)), order, run_id)
            if prior is not None:
                pipe.unwatch()
                return prior
            return self._record_rejection(
                pipe, order, run_id, now, list(checks), rule=rule, reason=reason, details=dict(details)
            )

        result: ReserveResult = self._transact(attempt, f"record rejection of {order.client_order_id}")
        return result

    def _index_fields(
        self, order: OrderSpec, run_id: str, now: datetime, decision: str, checks: Sequence[str]
    ) -> dict[str, str]:
        return {
            "run_id": run_id,
            "account_id": order.account_id,
            "symbol": order.symbol,
            "status": decision,
            "risk_decision": decision,
            "checks": ",".join(checks),
            "decided_at": now.isoformat(),
        }

    def _record_rejection(
        self,
        pipe: Any,
        order: OrderSpec,
        run_id: str,
        now: datetime,
        checks: Sequence[str],
        *,
        rule: str,
        reason: str,
        details: dict[str, str],
    ) -> ReserveResult:
        pipe.multi()
        pipe.hset(
            self._keys.order(order.client_order_id),
            mapping={
                **self._index_fields(order, run_id, now, REJECTED, checks),
                "rule": rule,
                "reason": reason,
                "details": json.dumps(details, sort_keys=True),
            },
        )
        pipe.execute()
        return ReserveResult(ok=False, checks=tuple(checks), rule=rule, reason=reason, details=details)

    # --- release -----------------------------------------------------------------------------------------

    def release_fill(
        self, client_order_id: str, filled_amount: Decimal, order_amount: Decimal, trade_id: str
    ) -> Decimal:
        """Give back the share of the reservation a fill used: ``initial * filled_amount / order_amount``
        (rounded down to 18 places, capped at what remains). Once per ``trade_id``: a repeated call
        releases nothing and returns 0. Returns the amount released by this call (0 if the order has no
        reservation)."""
        if filled_amount <= 0 or order_amount <= 0:
            raise ValueError(f"filled_amount {filled_amount} and order_amount {order_amount} must be > 0")

        def share(initial: Decimal, remaining: Decimal) -> Decimal:
            return min(_quantize_down(initial * filled_amount / order_amount), remaining)

        return self._release(client_order_id, f"fill:{trade_id}", share)

    def release_all(self, client_order_id: str, reason_key: str) -> Decimal:
        """Give back everything that remains (the order was rejected, canceled, failed or fully filled).
        Once per ``reason_key``. Returns the amount released by this call."""
        return self._release(client_order_id, f"all:{reason_key}", lambda _initial, remaining: remaining)

    def _release(self, coid: str, marker: str, amount_of: Callable[[Decimal, Decimal], Decimal]) -> Decimal:
        rsv_key = self._keys.reservation(coid)

        def attempt(pipe: Any) -> Decimal:
            pipe.watch(rsv_key)
            data = _str_map(pipe.hgetall(rsv_key))
            if not data or marker in data:
                pipe.unwatch()
                return ZERO
            # The account and currency of a reservation never change, so watching the total now is enough.
            reserved_key = self._keys.reserved(data["account"])
            currency = data["currency"]
            pipe.watch(reserved_key)
            with localcontext(EXACT):
                initial, remaining = Decimal(data["initial"]), Decimal(data["remaining"])
                amount = max(amount_of(initial, remaining), ZERO)
                held = to_decimal(pipe.hget(reserved_key, currency)) or ZERO
                # Never below zero, even if the total was edited by hand.
                new_held = max(held - amount, ZERO)
                new_remaining = remaining - amount
            pipe.multi()
            pipe.hset(rsv_key, mapping={"remaining": fmt(new_remaining), marker: fmt(amount)})
            if new_held == 0:
                pipe.hdel(reserved_key, currency)
            else:
                pipe.hset(reserved_key, currency, fmt(new_held))
            pipe.execute()
            return amount

        released: Decimal = self._transact(attempt, f"release {marker} of {coid}")
        return released

    # --- reads -------------------------------------------------------------------------------------------

    def outstanding(self, client_order_id: str) -> Decimal:
        """What the order still holds (0 if it has no reservation)."""
        return to_decimal(self._client.hget(self._keys.reservation(client_order_id), "remaining")) or ZERO

    def reservation_state(self, coid: str) -> dict[str, str]:
        """The raw reservation hash (for inspection and tests)."""
        return _str_map(self._client.hgetall(self._keys.reservation(coid)))

    def reserved_total(self, account_id: str, currency: str) -> Decimal:
        return to_decimal(self._client.hget(self._keys.reserved(account_id), currency)) or ZERO
