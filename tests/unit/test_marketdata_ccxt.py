"""The ccxt market data source, offline: a REAL ``ccxt.binance`` whose ``fetch`` returns canned raw Binance
responses, so ccxt's own request building and parsing run; markets are injected with ``set_markets``."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from zvt_pipeline.errors import ConfigError, VenueRetryable, VenueTerminal
from zvt_pipeline.marketdata import CcxtSourceConfig
from zvt_pipeline.marketdata.ccxt_source import (
    CcxtMarketData,
    book_from_ccxt,
    ccxt_pro_available,
    create_exchange,
    price_from_quotes,
    trade_from_ccxt,
)
from zvt_pipeline.markets import load_markets_file
from zvt_pipeline.messages.events import OrderBookUpdated, PriceUpdated, TradeTick
from zvt_pipeline.messages.types import Side, utcnow

ccxt = pytest.importorskip("ccxt")

# Raw Binance spot responses (shapes from the API docs: /api/v3/depth, /api/v3/ticker/24hr, /api/v3/aggTrades).
DEPTH = {
    "lastUpdateId": 1027024,
    "bids": [["60000.01", "0.50000000"], ["60000.00", "1.20000000"], ["59999.50", "0.1"]],
    "asks": [["60000.05", "0.30000000"], ["60000.10", "2.00000000"], ["60001.00", "0.00000000"]],
}
TICKER = {
    "symbol": "BTCUSDT",
    "priceChange": "-94.99999800",
    "priceChangePercent": "-0.160",
    "weightedAvgPrice": "60010.12",
    "prevClosePrice": "60095.00",
    "lastPrice": "60000.03",
    "lastQty": "0.002",
    "bidPrice": "60000.01",
    "bidQty": "0.50000000",
    "askPrice": "60000.05",
    "askQty": "0.30000000",
    "openPrice": "60095.00",
    "highPrice": "61000.00",
    "lowPrice": "59000.00",
    "volume": "8913.30000000",
    "quoteVolume": "534798000.00",
    "openTime": 1717000000000,
    "closeTime": 1717086400000,
    "firstId": 28385,
    "lastId": 28460,
    "count": 76,
}
AGG_TRADES = [
    {
        "a": 26129,
        "p": "60000.05",
        "q": "0.01000000",
        "f": 27781,
        "l": 27781,
        "T": 1717086399000,
        "m": False,
        "M": True,
    },
    {
        "a": 26130,
        "p": "60000.01",
        "q": "0.1",
        "f": 27782,
        "l": 27783,
        "T": 1717086399500,
        "m": True,
        "M": True,
    },
]


class CannedBinance:
    """Holds the canned responses and records the URLs ccxt asked for."""

    def __init__(self) -> None:
        self.urls: list[str] = []
        self.depth: dict[str, Any] = dict(DEPTH)
        self.trades: list[dict[str, Any]] = list(AGG_TRADES)
        self.error: Exception | None = None

    def fetch(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        self.urls.append(url)
        if self.error is not None:
            raise self.error
        if "/api/v3/depth" in url:
            return self.depth
        if "/api/v3/ticker/24hr" in url:
            return TICKER
        if "/api/v3/aggTrades" in url:
            return self.trades
        raise AssertionError(f"unexpected request {url}")


def binance_markets() -> dict[str, dict[str, Any]]:
    out = {}
    for market in load_markets_file().values():
        m = market.to_ccxt()
        # What ccxt's binance reads from a market besides the unified fields.
        m.update(
            lowercaseId=m["id"].lower(),
            option=False,
            linear=None,
            inverse=None,
            swap=False,
            future=False,
            contract=False,
            margin=False,
            settle=None,
            settleId=None,
        )
        out[market.symbol] = m
    return out


@pytest.fixture
def canned() -> CannedBinance:
    return CannedBinance()


@pytest.fixture
def exchange(canned: CannedBinance) -> Any:
    ex = create_exchange(CcxtSourceConfig(exchange_id="binance"))
    assert isinstance(ex, ccxt.binance) and ex.enableRateLimit
    ex.fetch = canned.fetch
    ex.set_markets(binance_markets())
    return ex


def source(exchange: Any, **cfg: Any) -> CcxtMarketData:
    return CcxtMarketData(CcxtSourceConfig(symbols=("BTC/USDT",), **cfg), exchange=exchange)


def test_poll_parses_book_mark_and_trades_through_ccxt(exchange: Any, canned: CannedBinance) -> None:
    payloads = source(exchange).poll()
    assert [type(p) for p in payloads] == [OrderBookUpdated, PriceUpdated, TradeTick, TradeTick]
    book, price, buy, sell = payloads
    assert isinstance(book, OrderBookUpdated)
    assert book.venue == "binance" and book.symbol == "BTC/USDT"
    assert [(lv.price, lv.amount) for lv in book.bids] == [
        (Decimal("60000.01"), Decimal("0.5")),
        (Decimal("60000"), Decimal("1.2")),
        (Decimal("59999.5"), Decimal("0.1")),
    ]
    # The zero-size ask level is not liquidity and is dropped.
    assert [lv.price for lv in book.asks] == [Decimal("60000.05"), Decimal("60000.1")]
    assert book.sequence == 1027024  # Binance's lastUpdateId
    assert isinstance(price, PriceUpdated)
    assert (price.bid, price.ask, price.price) == (
        Decimal("60000.01"),
        Decimal("60000.05"),
        Decimal("60000.03"),
    )
    assert isinstance(buy, TradeTick) and isinstance(sell, TradeTick)
    assert (buy.trade_id, buy.side, buy.price, buy.amount) == (
        "26129",
        Side.BUY,
        Decimal("60000.05"),
        Decimal("0.01"),
    )
    # Binance's "m" (buyer is maker) means the taker sold.
    assert (sell.trade_id, sell.side, sell.amount) == ("26130", Side.SELL, Decimal("0.1"))
    assert sell.timestamp.timestamp() == 1717086399.5
    # ccxt built the real Binance requests.
    assert any("depth?symbol=BTCUSDT&limit=20" in u for u in canned.urls)
    assert any("ticker/24hr?symbol=BTCUSDT" in u for u in canned.urls)
    assert any("aggTrades?symbol=BTCUSDT&limit=50" in u for u in canned.urls)


def test_trades_are_emitted_once_and_sequence_never_goes_back(exchange: Any, canned: CannedBinance) -> None:
    src = source(exchange)
    src.poll()
    canned.trades = [*AGG_TRADES, {**AGG_TRADES[0], "a": 26131, "T": 1717086400000}]
    canned.depth = {**DEPTH, "lastUpdateId": 5}  # an exchange restart resets its counter
    second = src.poll()
    trades = [p for p in second if isinstance(p, TradeTick)]
    assert [t.trade_id for t in trades] == ["26131"]
    book = second[0]
    assert isinstance(book, OrderBookUpdated) and book.sequence == 1027025


def test_without_ticker_the_mark_comes_from_the_book(exchange: Any, canned: CannedBinance) -> None:
    payloads = source(exchange, with_ticker=False, with_trades=False).poll()
    assert [type(p) for p in payloads] == [OrderBookUpdated, PriceUpdated]
    assert payloads[1].price == Decimal("60000.03")  # type: ignore[union-attr]
    assert not any("ticker" in u or "aggTrades" in u for u in canned.urls)


def test_network_errors_are_retryable_others_terminal(exchange: Any, canned: CannedBinance) -> None:
    canned.error = ccxt.RequestTimeout("binance GET https://api.binance.com/api/v3/depth timed out")
    with pytest.raises(VenueRetryable, match="RequestTimeout"):
        source(exchange).poll()
    canned.error = ccxt.BadSymbol("binance does not have market symbol")
    with pytest.raises(VenueTerminal, match="BadSymbol"):
        source(exchange).poll()


def test_unknown_exchange_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="nosuchexchange"):
        create_exchange(CcxtSourceConfig(exchange_id="nosuchexchange"))


def test_floats_become_exact_decimals() -> None:
    raw = {"bids": [[0.1, 1e-05], [0.09, 3]], "asks": [[0.30000000000000004, 2.5]], "timestamp": None}
    book = book_from_ccxt("x", "A/B", raw, 1)
    assert book.bids[0].price == Decimal("0.1") and book.bids[0].amount == Decimal("0.00001")
    assert book.asks[0].price == Decimal("0.30000000000000004")


def test_unsorted_levels_are_put_best_first() -> None:
    raw = {"bids": [[9, 1], [10, 1]], "asks": [[12, 1], [11, 1]]}
    book = book_from_ccxt("x", "A/B", raw, 1)
    assert [lv.price for lv in book.bids] == [10, 9] and [lv.price for lv in book.asks] == [11, 12]


def test_mark_falls_back_to_last_and_then_to_nothing() -> None:
    now = utcnow()
    last_only = price_from_quotes("x", "A/B", None, Decimal("2"), Decimal("1.5"), now)
    assert last_only is not None and last_only.price == Decimal("1.5") and last_only.ask == Decimal("2")
    assert price_from_quotes("x", "A/B", None, None, None, now) is None
    assert trade_from_ccxt("x", "A/B", {"id": None, "price": 1, "amount": 1}) is None


@pytest.mark.skipif(not ccxt_pro_available(), reason="ccxt.pro not importable")
def test_watch_streams_books_from_a_ccxt_pro_exchange() -> None:
    import ccxt.pro

    pro = ccxt.pro.binance({"enableRateLimit": True})
    updates = {"BTC/USDT": 0, "ETH/USDT": 0}

    async def watch_order_book(symbol: str, limit: int | None = None, params: Any = None) -> dict[str, Any]:
        # Stands in for the websocket: ccxt.pro returns the same unified book structure as fetch_order_book.
        await asyncio.sleep(0)
        updates[symbol] += 1
        base = 60000 if symbol == "BTC/USDT" else 3000
        return {
            "bids": [[base - 0.01, 1.0]],
            "asks": [[base + 0.01, 2.0]],
            "timestamp": 1717086400000,
            "nonce": None,
        }

    pro.watch_order_book = watch_order_book

    async def collect() -> list[Any]:
        src = CcxtMarketData(CcxtSourceConfig(symbols=("BTC/USDT", "ETH/USDT")))
        out = []
        stream = src.watch(exchange=pro)
        async for batch in stream:
            out.append(batch)
            if len(out) == 6:
                break
        await stream.aclose()
        return out

    batches = asyncio.run(collect())
    assert len(batches) == 6
    for book, price in batches:
        assert isinstance(book, OrderBookUpdated) and isinstance(price, PriceUpdated)
        assert price.price == (book.bids[0].price + book.asks[0].price) / 2
    seqs: dict[str, list[int]] = {"BTC/USDT": [], "ETH/USDT": []}
    for book, _ in batches:
        seqs[book.symbol].append(book.sequence)
    for s in seqs.values():
        assert s == sorted(s) and len(set(s)) == len(s)
    assert {b[0].symbol for b in batches} == {"BTC/USDT", "ETH/USDT"}
