"""Rebuild every account's portfolio purely from the event store, and compare it with the live projection.

Only two event types change a portfolio: ``order.executed`` (a fill) and ``balance.deposited`` (funding).
Everything else in the log is skipped. Events must come in global order (``EventStore.iter_all``): average
cost accounting depends on the order fills were applied in, and the live store applies them in the order
they were appended. A fill that appears twice (same venue and trade id) is applied once, as live.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from zvt_pipeline.messages.envelope import Envelope
from zvt_pipeline.messages.events import BalanceDeposited, OrderExecuted, PositionUpdated
from zvt_pipeline.portfolio import engine
from zvt_pipeline.portfolio.engine import ZERO, AccountState, Position

Portfolio = dict[str, AccountState]
"""Account id -> state."""


def account_stream(account_id: str) -> str:
    """The stream that account-level events (deposits) are appended to."""
    return f"account-{account_id}"


def rebuild(events: Iterable[Envelope]) -> Portfolio:
    """Fold the portfolio events of ``events`` (in global order) into per-account states.

    Fills are applied in the order the live store applied them (``position.updated.sequence``), which can
    differ from the global log when several workers apply fills concurrently; fills not yet applied live
    follow in global order."""
    events = list(events)
    applied_at: dict[tuple[str, str], int] = {}
    for envelope in events:
        p = envelope.payload
        if isinstance(p, PositionUpdated) and p.sequence is not None:
            applied_at[(p.account_id, f"{p.venue}|{p.trade_id}")] = p.sequence
    late = len(events) + 1

    def apply_order(item: tuple[int, Envelope]) -> tuple[int, int]:
        index, envelope = item
        p = envelope.payload
        if isinstance(p, OrderExecuted):
            seq = applied_at.get((p.account_id, engine.fill_key(p)))
            if seq is not None:
                return (0, seq)
            return (1, late + index)
        return (-1, index)  # deposits first: cash is order-independent, positions never depend on it

    ledgers: dict[str, engine.Ledger] = {}
    for _, envelope in sorted(enumerate(events), key=apply_order):
        payload = envelope.payload
        if isinstance(payload, OrderExecuted | BalanceDeposited):
            ledger = ledgers.get(payload.account_id)
            if ledger is None:
                ledger = ledgers[payload.account_id] = engine.Ledger(payload.account_id)
            if isinstance(payload, OrderExecuted):
                ledger.apply(payload)
            else:
                ledger.deposit(payload.currency, payload.amount)
    return {account: ledger.freeze() for account, ledger in ledgers.items()}


def _position_diff(where: str, rebuilt: Position, live: Position) -> list[str]:
    out = []
    for name in ("amount", "avg_entry_price", "realized_pnl", "last_trade_id"):
        a, b = getattr(rebuilt, name), getattr(live, name)
        if a != b:
            out.append(f"{where} {name}: rebuilt {a} != live {b}")
    fees_a, fees_b = dict(rebuilt.fees_paid), dict(live.fees_paid)
    for currency in sorted(fees_a.keys() | fees_b.keys()):
        a, b = fees_a.get(currency, ZERO), fees_b.get(currency, ZERO)
        if a != b:
            out.append(f"{where} fees_paid[{currency}]: rebuilt {a} != live {b}")
    return out


def _money_diff(where: str, rebuilt: Mapping[str, Decimal], live: Mapping[str, Decimal]) -> list[str]:
    out = []
    for currency in sorted(rebuilt.keys() | live.keys()):
        a, b = rebuilt.get(currency, ZERO), live.get(currency, ZERO)
        if a != b:
            out.append(f"{where}[{currency}]: rebuilt {a} != live {b}")
    return out


def diff(rebuilt: Mapping[str, AccountState], live: Mapping[str, AccountState]) -> list[str]:
    """Human-readable differences between two portfolios; empty when they agree. Decimals compare by
    value (``1.0 == 1``) and a missing balance or fee equals zero."""
    out: list[str] = []
    for account in sorted(rebuilt.keys() | live.keys()):
        a, b = rebuilt.get(account), live.get(account)
        if a is None or b is None:
            out.append(f"{account}: only in {'live' if a is None else 'rebuilt'}")
            continue
        for key in sorted(a.positions.keys() | b.positions.keys()):
            where = f"{account} {engine.position_field(*key)}"
            if key not in a.positions or key not in b.positions:
                out.append(f"{where}: position only in {'live' if key not in a.positions else 'rebuilt'}")
                continue
            out += _position_diff(where, a.positions[key], b.positions[key])
        out += _money_diff(f"{account} balance", a.balances, b.balances)
        for trade in sorted(a.applied_trades ^ b.applied_trades):
            side = "rebuilt" if trade in a.applied_trades else "live"
            out.append(f"{account} applied trade {trade}: only in {side}")
    return out
