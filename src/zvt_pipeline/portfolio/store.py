"""The portfolio projection in Redis: each fill applied exactly once, with exact decimal money.

Why WATCH/MULTI and not Lua: Lua numbers are IEEE doubles, so ``0.1 + 0.2`` in a script is not 0.3 and
prices times amounts lose digits. Here the arithmetic stays in Python (``engine.apply_fill``, ``Decimal``)
and Redis only guarantees atomicity, optimistically:

1. ``WATCH`` the account's applied-trades set, position hash and balance hash;
2. read: is ``<venue>|<trade_id>`` already applied? (then nothing to do: return ``None``), the position and
   the balances;
3. compute the new position and balances with the pure engine;
4. ``MULTI`` / write position, balances, the applied trade id and the resulting ``position.updated``
   payload / ``EXEC``.

If any watched key changed between 1 and 4 (another process applied a fill to the same account), ``EXEC``
fails with ``WatchError`` and the whole read-compute-write runs again on fresh data, up to ``max_retries``
times with a small random backoff. Because the applied-trades check is inside the watched section, two
processes delivering the same fill can never both apply it: the loser retries, sees the trade id and
returns ``None``.

Layout (see ``state/keys.py``): ``position(account)`` hash ``<venue>|<symbol>`` -> JSON
``{"amount", "avg_entry_price", "realized_pnl", "fees_paid": {cur: amt}, "last_trade_id"}`` (decimal
strings); ``balance(account)`` hash currency -> decimal string; ``applied_trades(account)`` set;
``fill_results(account)`` hash fill key -> ``PositionUpdated`` JSON; ``accounts`` set of account ids.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import orjson
import redis

from zvt_pipeline.errors import RetryableError, StoreUnavailable
from zvt_pipeline.messages.events import BalanceDeposited, OrderExecuted, PositionUpdated
from zvt_pipeline.portfolio import engine
from zvt_pipeline.portfolio.engine import AccountState, Position, PositionKey, decimal_text
from zvt_pipeline.state.keys import Keys


class PortfolioContention(RetryableError):
    """Too many concurrent writers on one account: the optimistic transaction kept losing."""

    code = "portfolio_contention"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def encode_position(pos: Position) -> bytes:
    return orjson.dumps(
        {
            "amount": decimal_text(pos.amount),
            "avg_entry_price": decimal_text(pos.avg_entry_price),
            "realized_pnl": decimal_text(pos.realized_pnl),
            "fees_paid": {c: decimal_text(a) for c, a in sorted(pos.fees_paid.items())},
            "last_trade_id": pos.last_trade_id,
        }
    )


def decode_position(raw: bytes | str) -> Position:
    data = orjson.loads(raw)
    return Position(
        amount=Decimal(data["amount"]),
        avg_entry_price=Decimal(data["avg_entry_price"]),
        realized_pnl=Decimal(data["realized_pnl"]),
        fees_paid={c: Decimal(a) for c, a in data.get("fees_paid", {}).items()},
        last_trade_id=data.get("last_trade_id"),
    )


def _decimal_hash(raw: dict[Any, Any]) -> dict[str, Decimal]:
    return {_text(k): Decimal(_text(v)) for k, v in raw.items()}


class PortfolioStore:
    """Positions and cash of every account, in Redis. Safe to use from any number of processes."""

    def __init__(self, client: redis.Redis, keys: Keys, *, max_retries: int = 100) -> None:
        self.client = client
        self.keys = keys
        self.max_retries = max_retries
        """Optimistic attempts before ``PortfolioContention``; each retry follows a lost race."""

    # --- writes ----------------------------------------------------------------------------------------

    def apply(self, fill: OrderExecuted) -> PositionUpdated | None:
        """Apply ``fill`` exactly once; the resulting ``position.updated`` payload, or ``None`` when this
        fill (same venue and trade id) was applied before."""
        account = fill.account_id
        pos_key = self.keys.position(account)
        bal_key = self.keys.balance(account)
        applied_key = self.keys.applied_trades(account)
        member = engine.fill_key(fill)
        field = engine.position_field(fill.venue, fill.symbol)

        def attempt(pipe: Any) -> PositionUpdated | None:
            if pipe.sismember(applied_key, member):
                return None
            raw = pipe.hget(pos_key, field)
            positions = {(fill.venue, fill.symbol): decode_position(raw)} if raw else {}
            state = AccountState(account, positions, _decimal_hash(pipe.hgetall(bal_key)))
            after = engine.apply_fill(state, fill)
            # The set of applied fills is WATCHed, so its size is this account's apply order.
            sequence = int(pipe.scard(applied_key)) + 1
            update = engine.position_updated(after, fill).model_copy(update={"sequence": sequence})
            pipe.multi()
            pipe.hset(pos_key, field, encode_position(after.position(fill.venue, fill.symbol)))
            pipe.hset(bal_key, mapping={c: decimal_text(a) for c, a in after.balances.items()})
            pipe.sadd(applied_key, member)
            pipe.hset(self.keys.fill_results(account), member, update.model_dump_json())
            pipe.sadd(self.keys.accounts, account)
            pipe.execute()
            return update

        return self._optimistic(attempt, pos_key, bal_key, applied_key)

    def deposit(self, account_id: str, currency: str, amount: Decimal) -> BalanceDeposited:
        """Add cash. Returns the ``balance.deposited`` payload: append it to the event store (e.g. to
        ``account-<id>``) so a rebuild sees the same funding. Not idempotent: call it once per deposit."""
        event = BalanceDeposited(account_id=account_id, currency=currency, amount=amount)  # validates
        bal_key = self.keys.balance(account_id)

        def attempt(pipe: Any) -> None:
            state = AccountState(account_id, balances=_decimal_hash(pipe.hgetall(bal_key)))
            after = engine.deposit(state, event.currency, event.amount)
            pipe.multi()
            pipe.hset(bal_key, event.currency, decimal_text(after.balances[event.currency]))
            pipe.sadd(self.keys.accounts, account_id)
            pipe.execute()

        self._optimistic(attempt, bal_key)
        return event

    def replace(self, state: AccountState) -> None:
        """Overwrite one account's projection with ``state`` (a rebuild). Stored fill results are dropped;
        ``result_for`` then reads the current state back."""
        keys = self.keys
        account = state.account_id
        with self._errors(), self.client.pipeline(transaction=True) as pipe:
            pipe.delete(
                keys.position(account), keys.balance(account), keys.applied_trades(account),
                keys.fill_results(account),
            )  # fmt: skip
            if state.positions:
                pipe.hset(
                    keys.position(account),
                    mapping={
                        engine.position_field(v, s): encode_position(p)
                        for (v, s), p in state.positions.items()
                    },
                )
            if state.balances:
                pipe.hset(
                    keys.balance(account), mapping={c: decimal_text(a) for c, a in state.balances.items()}
                )
            if state.applied_trades:
                pipe.sadd(keys.applied_trades(account), *sorted(state.applied_trades))
            pipe.sadd(keys.accounts, account)
            pipe.execute()

    # --- reads -----------------------------------------------------------------------------------------

    def result_for(self, fill: OrderExecuted) -> PositionUpdated | None:
        """What applying ``fill`` returned: the stored payload, else (after a ``replace``) the position and
        balances as they are now; ``None`` if the fill was never applied."""
        account = fill.account_id
        member = engine.fill_key(fill)
        with self._errors():
            raw = self.client.hget(self.keys.fill_results(account), member)
            if raw is not None:
                return PositionUpdated.model_validate_json(raw)
            if not self.client.sismember(self.keys.applied_trades(account), member):
                return None
        return engine.position_updated(self.load(account), fill)

    def positions(self, account_id: str) -> dict[PositionKey, Position]:
        with self._errors():
            raw = self.client.hgetall(self.keys.position(account_id))
        return {engine.parse_position_field(_text(k)): decode_position(v) for k, v in raw.items()}

    def balances(self, account_id: str) -> dict[str, Decimal]:
        with self._errors():
            return _decimal_hash(self.client.hgetall(self.keys.balance(account_id)))

    def applied_trades(self, account_id: str) -> frozenset[str]:
        with self._errors():
            return frozenset(_text(m) for m in self.client.smembers(self.keys.applied_trades(account_id)))

    def accounts(self) -> list[str]:
        with self._errors():
            return sorted(_text(m) for m in self.client.smembers(self.keys.accounts))

    def load(self, account_id: str) -> AccountState:
        """One account's state, read in one transaction so the parts are consistent."""
        keys = self.keys
        with self._errors(), self.client.pipeline(transaction=True) as pipe:
            pipe.hgetall(keys.position(account_id))
            pipe.hgetall(keys.balance(account_id))
            pipe.smembers(keys.applied_trades(account_id))
            raw_pos, raw_bal, raw_applied = pipe.execute()
        return AccountState(
            account_id=account_id,
            positions={engine.parse_position_field(_text(k)): decode_position(v) for k, v in raw_pos.items()},
            balances=_decimal_hash(raw_bal),
            applied_trades=frozenset(_text(m) for m in raw_applied),
        )

    def snapshot(self) -> dict[str, AccountState]:
        """Every account's state (for ``replay --verify``)."""
        return {account: self.load(account) for account in self.accounts()}

    def marks(self) -> dict[PositionKey, Decimal]:
        """Last mark per ``(venue, symbol)``, as written by market data to ``keys.marks``."""
        with self._errors():
            raw = self.client.hgetall(self.keys.marks)
        return {engine.parse_position_field(_text(k)): Decimal(_text(v)) for k, v in raw.items()}

    # --- plumbing --------------------------------------------------------------------------------------

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc

    def _optimistic(self, attempt: Any, *watch: str) -> Any:
        """Run ``attempt(pipe)`` under ``WATCH watch...`` until its ``EXEC`` succeeds."""
        for n in range(self.max_retries):
            with self._errors(), self.client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(*watch)
                    return attempt(pipe)
                except redis.WatchError:
                    pass
            # Jittered backoff, growing to 20 ms, so a crowd of writers does not retry in lockstep.
            time.sleep(random.uniform(0, min(0.0005 * 2**n, 0.02)))
        raise PortfolioContention(
            f"portfolio: gave up after {self.max_retries} optimistic attempts on {', '.join(watch)}"
        )
