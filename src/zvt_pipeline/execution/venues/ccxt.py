"""A venue over any ccxt exchange (``ccxt`` is imported lazily: ``import ccxt`` costs ~0.5 s).

- Every order carries our client order id (``params={'clientOrderId': ...}``; ccxt maps it to Binance's
  ``newClientOrderId``, OKX's ``clOrdId``, ...). Where an exchange restricts the id's alphabet or length
  (OKX: ``[A-Za-z0-9]{1,32}``), a deterministic digest of our id is sent instead, so the same order always
  maps to the same venue id and lookups still find it.
- ccxt's unified errors are mapped to ``VenueRetryable`` / ``VenueTerminal``. On create, a timeout or a
  broken connection (``RequestTimeout``, ``NetworkError``, ``ExchangeNotAvailable``: Binance documents 503
  as "execution status unknown") is AMBIGUOUS and raises ``AmbiguousSubmit``; a refusal before processing
  (``RateLimitExceeded``, ``DDoSProtection``, ``InvalidNonce``, ``OnMaintenance``) is plainly retryable. A
  rejection as an invalid order (which is how venues report a duplicate client order id) is
  followed by one lookup: if the order with our id exists, it is returned instead of an error.
- Numbers go to ccxt as decimal strings and come back through ``str`` into ``Decimal``: no binary float
  rounding reaches the pipeline.
- Markets are loaded once and cached, or injected (``set_markets`` / ``set_markets_file``) for offline use.
- API keys: the exchange object gets its own logger whose filter masks the key values, because ccxt's DEBUG
  log prints request headers (which carry the API key). Error texts are masked the same way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from zvt_pipeline.errors import AmbiguousSubmit, VenueError, VenueRetryable, VenueTerminal
from zvt_pipeline.execution.config import CcxtVenueConfig
from zvt_pipeline.execution.venues.base import BestBidAsk, OrderStatus, Venue, VenueOrder, VenueTrade
from zvt_pipeline.markets import Market
from zvt_pipeline.messages.commands import OrderSpec
from zvt_pipeline.messages.types import Fee, Liquidity, OrderType, TimeInForce, utcnow
from zvt_pipeline.secrets import ExchangeCredentials

ZERO = Decimal(0)

# Client order id rules stricter than ours (``[A-Za-z0-9_-]{1,36}``), by exchange id.
CLIENT_ID_RULES: dict[str, re.Pattern[str]] = {
    "okx": re.compile(r"^[A-Za-z0-9]{1,32}$"),
    "bybit": re.compile(r"^[A-Za-z0-9_-]{1,36}$"),
    "kraken": re.compile(r"^[A-Za-z0-9_-]{1,18}$"),
}

_STATUS: dict[str, OrderStatus] = {
    "open": "open",
    "closed": "closed",
    "canceled": "canceled",
    "cancelled": "canceled",
    "expired": "canceled",
    "rejected": "canceled",
}

ERROR_CODES = {
    "InsufficientFunds": "insufficient_funds",
    "InvalidOrder": "invalid_order",
    "OrderNotFound": "order_not_found",
    "AuthenticationError": "authentication_failed",
    "PermissionDenied": "authentication_failed",
    "AccountSuspended": "authentication_failed",
    "BadSymbol": "bad_symbol",
    "BadRequest": "bad_request",
}


class _Redact(logging.Filter):
    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = tuple(s for s in secrets if s)

    def redact(self, text: str) -> str:
        for s in self._secrets:
            text = text.replace(s, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            record.msg = self.redact(record.getMessage())
            record.args = ()
        return True


def _dec(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    return Decimal(str(value))


def map_ccxt_error(exc: Exception, venue: str, *, submit: bool = False, redact: Any = None) -> VenueError:
    """ccxt unified error -> our venue error. ``submit`` marks a create-order call, where a timeout or a
    lost connection is ambiguous (the order may exist)."""
    import ccxt

    text = f"{venue}: {type(exc).__name__}: {str(exc)[:500]}"
    if redact is not None:
        text = redact(text)
    err: VenueError
    refused = (ccxt.RateLimitExceeded, ccxt.DDoSProtection, ccxt.InvalidNonce, ccxt.OnMaintenance)
    if isinstance(exc, refused):
        err = VenueRetryable(text)
    elif isinstance(exc, ccxt.NetworkError):  # RequestTimeout, ExchangeNotAvailable, connection errors
        err = AmbiguousSubmit(text) if submit else VenueRetryable(text)
    elif isinstance(exc, ccxt.ExchangeError):
        err = VenueTerminal(text)
        for cls in type(exc).__mro__:
            if cls.__name__ in ERROR_CODES:
                err.code = ERROR_CODES[cls.__name__]
                break
    elif isinstance(exc, ccxt.OperationFailed):  # e.g. Binance -1001 "internal error, try again"
        err = AmbiguousSubmit(text) if submit else VenueRetryable(text)
    else:
        err = VenueTerminal(text)
    return err


class CcxtVenue(Venue):
    def __init__(
        self,
        exchange: Any,
        *,
        venue_id: str | None = None,
        secrets: Iterable[str] = (),
        order_book_depth: int = 5,
    ) -> None:
        """``exchange``: a ccxt exchange object (sync API). ``secrets``: plain values to mask in logs and
        error texts (``ExchangeCredentials.secret_values()``)."""
        self._ex = exchange
        self._id = venue_id or exchange.id
        self._rule = CLIENT_ID_RULES.get(exchange.id)
        self._depth = order_book_depth
        self._redactor = _Redact(secrets)
        logger = logging.getLogger(f"zvt_pipeline.ccxt.{self._id}")
        logger.addFilter(self._redactor)
        exchange.logger = logger
        self._markets: dict[str, Market] | None = None

    @classmethod
    def from_config(cls, config: CcxtVenueConfig, credentials: ExchangeCredentials | None) -> CcxtVenue:
        import ccxt

        factory = getattr(ccxt, config.exchange, None)
        if factory is None:
            from zvt_pipeline.errors import ConfigError

            raise ConfigError(f"ZVT_VENUES: {config.exchange!r} is not a ccxt exchange id")
        params: dict[str, Any] = {"enableRateLimit": True, "timeout": config.timeout_ms}
        if credentials is not None:
            params.update(credentials.ccxt_params())
        exchange = factory(params)
        if config.sandbox:
            exchange.set_sandbox_mode(True)
        venue = cls(exchange, secrets=credentials.secret_values() if credentials else ())
        if config.markets_file is not None:
            venue.set_markets_file(config.markets_file)
        return venue

    # --- markets ----------------------------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._id

    @property
    def exchange(self) -> Any:
        return self._ex

    def set_markets(self, markets: Mapping[str, Mapping[str, Any]] | Iterable[Mapping[str, Any]]) -> None:
        """Inject ccxt-shaped markets (``{symbol: market}`` or a list), skipping ``load_markets``."""
        values = list(markets.values()) if isinstance(markets, Mapping) else list(markets)
        self._ex.set_markets(values)
        self._markets = None

    def set_markets_file(self, path: str | Path) -> None:
        self.set_markets(json.loads(Path(path).read_text()))

    def markets(self) -> dict[str, Market]:
        if self._markets is None:
            if not self._ex.markets:
                self._call(self._ex.load_markets)
            out: dict[str, Market] = {}
            for symbol, m in self._ex.markets.items():
                try:
                    out[symbol] = Market.from_ccxt(m)
                except ValueError:  # a market our symbol rules do not cover (options, odd names)
                    continue
            self._markets = out
        return self._markets

    # --- reads ------------------------------------------------------------------------------------------

    def best_bid_ask(self, symbol: str) -> BestBidAsk:
        book = self._call(self._ex.fetch_order_book, symbol, self._depth)
        bid = _dec(book["bids"][0][0]) if book.get("bids") else None
        ask = _dec(book["asks"][0][0]) if book.get("asks") else None
        return BestBidAsk(bid=bid, ask=ask)

    def free_balance(self, account_id: str, currency: str) -> Decimal | None:
        """One API key is one account: ``account_id`` is not used."""
        balance = self._call(self._ex.fetch_balance)
        return _dec((balance.get("free") or {}).get(currency))

    def fetch_order_by_client_id(self, symbol: str, client_order_id: str) -> VenueOrder | None:
        import ccxt

        params = {"clientOrderId": self.venue_client_id(client_order_id)}
        try:
            raw = self._ex.fetch_order(None, symbol, params)
        except ccxt.OrderNotFound:
            return None
        except ccxt.BaseError as exc:
            raise self._map(exc) from None
        return self._order(raw, symbol, client_order_id, None)

    # --- writes -----------------------------------------------------------------------------------------

    def create_order(self, order: OrderSpec) -> VenueOrder:
        import ccxt

        params: dict[str, Any] = {"clientOrderId": self.venue_client_id(order.client_order_id)}
        price: str | None = None
        if order.type is OrderType.LIMIT:
            assert order.price is not None
            price = str(order.price)
            params["timeInForce"] = order.time_in_force.value
        elif order.time_in_force is not TimeInForce.GTC:
            params["timeInForce"] = order.time_in_force.value
        if order.reduce_only and ":" in order.symbol:  # only derivatives know reduce-only
            params["reduceOnly"] = True
        try:
            raw = self._ex.create_order(
                order.symbol, order.type.value, order.side.value, str(order.amount), price, params
            )
        except ccxt.InvalidOrder as exc:
            # Includes "duplicate client order id" (Binance reports it as a plain NEW_ORDER_REJECTED): if an
            # order with our id exists, a concurrent run placed it and it is ours. Costs one lookup, and
            # only on a rejection.
            existing = self.fetch_order_by_client_id(order.symbol, order.client_order_id)
            if existing is not None:
                return existing
            raise self._map(exc) from None
        except ccxt.BaseError as exc:
            raise self._map(exc, submit=True) from None
        venue_order = self._order(raw, order.symbol, order.client_order_id, order.amount)
        if raw.get("status") is None:
            # Some venues (OKX) acknowledge with ids only: read the order's state and fills.
            try:
                found = self.fetch_order_by_client_id(order.symbol, order.client_order_id)
            except VenueRetryable:
                found = None
            if found is not None:
                return found
        return venue_order

    def cancel_order(self, symbol: str, client_order_id: str) -> VenueOrder | None:
        import ccxt

        params = {"clientOrderId": self.venue_client_id(client_order_id)}
        try:
            self._ex.cancel_order(None, symbol, params)
        except ccxt.OrderNotFound:
            pass  # already done (filled or canceled) or never existed: the lookup tells which
        except ccxt.BaseError as exc:
            raise self._map(exc) from None
        return self.fetch_order_by_client_id(symbol, client_order_id)

    # --- helpers ----------------------------------------------------------------------------------------

    def venue_client_id(self, client_order_id: str) -> str:
        """The id sent to the exchange: ours when the exchange accepts it, else a stable digest."""
        if self._rule is None or self._rule.match(client_order_id):
            return client_order_id
        return "z" + hashlib.sha256(client_order_id.encode()).hexdigest()[:31]

    def _map(self, exc: Exception, *, submit: bool = False) -> VenueError:
        return map_ccxt_error(exc, self._id, submit=submit, redact=self._redactor.redact)

    def _call(self, fn: Any, *args: Any) -> Any:
        import ccxt

        try:
            return fn(*args)
        except ccxt.BaseError as exc:
            raise self._map(exc) from None

    def _order(
        self, raw: Mapping[str, Any], symbol: str, client_order_id: str, amount: Decimal | None
    ) -> VenueOrder:
        venue_order_id = str(raw.get("id") or "")
        if not venue_order_id:
            raise VenueRetryable(f"{self._id}: order {client_order_id} came back without an id")
        amount = _dec(raw.get("amount")) or amount
        if amount is None:
            raise VenueRetryable(f"{self._id}: order {client_order_id} came back without an amount")
        filled = _dec(raw.get("filled")) or ZERO
        remaining = _dec(raw.get("remaining"))
        if remaining is None:
            remaining = amount - filled
        status = _STATUS.get(str(raw.get("status")))
        if status is None:
            status = "closed" if remaining == 0 else "open"
        raw_trades = list(raw.get("trades") or [])
        itemized = sum((_dec(t.get("amount")) or ZERO for t in raw_trades), ZERO)
        if filled > itemized and self._ex.has.get("fetchOrderTrades"):
            raw_trades = self._call(self._ex.fetch_order_trades, venue_order_id, symbol)
        quote = symbol.split("/", 1)[1].split(":", 1)[0]
        order_ts = raw.get("lastTradeTimestamp") or raw.get("timestamp")
        trades = [
            self._trade(t, venue_order_id, n, quote, order_ts) for n, t in enumerate(raw_trades, start=1)
        ]
        traded = sum((t.amount for t in trades), ZERO)
        if filled > traded and status != "open" and not trades:
            # The venue reports fills it will not itemize (no fetchOrderTrades): once the order is final,
            # book the whole filled amount as one fill at the average. Its id is fixed per order, so it is
            # applied once however often the order is looked up.
            price = _dec(raw.get("average")) or _dec(raw.get("price"))
            if price:
                trades.append(
                    VenueTrade(
                        trade_id=f"{venue_order_id}:all",
                        amount=filled,
                        price=price,
                        fee=Fee(cost=ZERO, currency=quote),
                        liquidity=Liquidity.TAKER,
                        timestamp=datetime.fromtimestamp(order_ts / 1000, UTC) if order_ts else utcnow(),
                    )
                )
        return VenueOrder(
            venue=self._id,
            venue_order_id=venue_order_id,
            client_order_id=client_order_id,
            symbol=symbol,
            status=status,
            amount=amount,
            filled=filled,
            remaining=remaining,
            average=_dec(raw.get("average")),
            trades=tuple(trades),
        )

    @staticmethod
    def _trade(
        t: Mapping[str, Any], venue_order_id: str, n: int, quote: str, order_ts: int | None
    ) -> VenueTrade:
        fee = t.get("fee") or {}
        ts = t.get("timestamp") or order_ts  # Binance's order fills carry no time of their own
        return VenueTrade(
            trade_id=str(t.get("id") or f"{venue_order_id}-{n}"),
            amount=Decimal(str(t["amount"])),
            price=Decimal(str(t["price"])),
            fee=Fee(cost=abs(_dec(fee.get("cost")) or ZERO), currency=fee.get("currency") or quote),
            liquidity=Liquidity.MAKER if t.get("takerOrMaker") == "maker" else Liquidity.TAKER,
            timestamp=datetime.fromtimestamp(ts / 1000, UTC) if ts else utcnow(),
        )
