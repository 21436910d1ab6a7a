"""Pure valuation of an account at marks: unrealized PnL, equity and exposure.

Assumption: **one quote currency per account** (e.g. USDT). Every position must be quoted in it, and
equity is ``cash in that currency + sum(amount * mark)``. Cash held in other currencies (a fee currency
such as BNB, or a deposit of BTC) has no price here, so it is reported in ``other_cash`` and left out of
equity rather than guessed. A position without a mark is valued at its average entry price (unrealized
PnL 0) and listed in ``unmarked`` so callers can tell a flat PnL from a missing price.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, localcontext

from zvt_pipeline.messages.types import split_symbol
from zvt_pipeline.portfolio.engine import DECIMAL_CONTEXT, ZERO, AccountState, PositionKey, canonical

DEFAULT_QUOTE = "USDT"
"""Quote currency assumed for an account with no positions (nothing tells which one it uses)."""


@dataclass(frozen=True, slots=True)
class PositionValue:
    venue: str
    symbol: str
    amount: Decimal
    avg_entry_price: Decimal
    mark: Decimal
    """The mark used: the last mark, or the average entry price when there is none."""
    notional: Decimal
    """``amount * mark``: signed market value."""
    unrealized_pnl: Decimal
    realized_pnl: Decimal
    marked: bool


@dataclass(frozen=True, slots=True)
class AccountValue:
    account_id: str
    quote_currency: str
    cash: Decimal
    """Cash in the quote currency."""
    equity: Decimal
    """``cash + net_exposure``."""
    gross_exposure: Decimal
    """``sum(|amount * mark|)``."""
    net_exposure: Decimal
    """``sum(amount * mark)``: long minus short market value."""
    unrealized_pnl: Decimal
    realized_pnl: Decimal
    positions: tuple[PositionValue, ...]
    other_cash: Mapping[str, Decimal]
    unmarked: tuple[PositionKey, ...]


def quote_currency_of(state: AccountState, default: str = DEFAULT_QUOTE) -> str:
    """The account's single quote currency; ``ValueError`` if its positions use more than one."""
    quotes = {split_symbol(symbol)[1] for (_venue, symbol) in state.positions}
    if len(quotes) > 1:
        raise ValueError(
            f"account {state.account_id!r} holds positions in several quote currencies {sorted(quotes)}; "
            "valuation assumes one quote currency per account"
        )
    return quotes.pop() if quotes else default


def value_account(
    state: AccountState, marks: Mapping[PositionKey, Decimal], quote_currency: str | None = None
) -> AccountValue:
    """Value ``state`` at ``marks`` (``(venue, symbol) -> price``). ``quote_currency`` defaults to the one
    the positions are quoted in (``DEFAULT_QUOTE`` when there are none)."""
    quote = quote_currency or quote_currency_of(state)
    values: list[PositionValue] = []
    unmarked: list[PositionKey] = []
    with localcontext(DECIMAL_CONTEXT):
        for (venue, symbol), pos in sorted(state.positions.items()):
            if split_symbol(symbol)[1] != quote:
                raise ValueError(f"position {venue}|{symbol} is not quoted in {quote}")
            mark = marks.get((venue, symbol))
            if mark is None:
                unmarked.append((venue, symbol))
            used = pos.avg_entry_price if mark is None else mark
            values.append(
                PositionValue(
                    venue=venue,
                    symbol=symbol,
                    amount=pos.amount,
                    avg_entry_price=pos.avg_entry_price,
                    mark=used,
                    notional=canonical(pos.amount * used),
                    unrealized_pnl=pos.unrealized_pnl(used),
                    realized_pnl=pos.realized_pnl,
                    marked=mark is not None,
                )
            )
        cash = state.balances.get(quote, ZERO)
        net = sum((v.notional for v in values), ZERO)
        gross = sum((abs(v.notional) for v in values), ZERO)
        return AccountValue(
            account_id=state.account_id,
            quote_currency=quote,
            cash=cash,
            equity=canonical(cash + net),
            gross_exposure=canonical(gross),
            net_exposure=canonical(net),
            unrealized_pnl=canonical(sum((v.unrealized_pnl for v in values), ZERO)),
            realized_pnl=canonical(sum((v.realized_pnl for v in values), ZERO)),
            positions=tuple(values),
            other_cash={c: a for c, a in sorted(state.balances.items()) if c != quote and a != 0},
            unmarked=tuple(unmarked),
        )
