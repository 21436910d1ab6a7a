"""CcxtVenue against REAL ccxt.binance / ccxt.okx objects, offline: a fake ``requests`` adapter mounted on
the exchange's session answers with canned raw exchange responses, so ccxt's own request signing,
parsing and error mapping (``handle_errors``) all run. Markets are injected with ``set_markets``."""

from __future__ import annotations

import json
import logging
from decimal import Decimal as D
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from requests.adapters import BaseAdapter

from zvt_pipeline.errors import AmbiguousSubmit, VenueRetryable, VenueTerminal
from zvt_pipeline.execution.config import ExecutionConfig
from zvt_pipeline.execution.step import ExecuteStep
from zvt_pipeline.execution.venues.ccxt import CcxtVenue
from zvt_pipeline.messages.commands import OrderSpec
from zvt_pipeline.messages.envelope import Envelope
from zvt_pipeline.messages.events import OrderExecuted, OrderRouted, Reservation

ccxt = pytest.importorskip("ccxt")
FIXTURES = Path(__file__).parent.parent / "fixtures" / "ccxt"
API_KEY, SECRET = "k3y-ABCDEF0123456789", "s3cr3t-ZYXWVU9876543210"

Answer = tuple[int, Any] | Exception


class FakeHttp(BaseAdapter):
    """Routes ``(METHOD, path)`` to queued canned answers: ``(status, json_body)`` or an exception that
    ``requests`` would raise (``requests.Timeout``, ``requests.ConnectionError``)."""

    def __init__(self) -> None:
        super().__init__()
        self.routes: dict[tuple[str, str], list[Answer]] = {}
        self.requests: list[requests.PreparedRequest] = []

    def on(self, method: str, path: str, *answers: Answer) -> FakeHttp:
        self.routes.setdefault((method, path), []).extend(answers)
        return self

    def calls(self, method: str, path: str) -> list[requests.PreparedRequest]:
        return [r for r in self.requests if r.method == method and urlsplit(r.url).path == path]

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.requests.append(request)
        key = (request.method or "GET", urlsplit(request.url).path)
        queue = self.routes.get(key)
        if not queue:
            raise AssertionError(f"unexpected request {key}")
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        status, body = answer
        resp = requests.Response()
        resp.status_code = status
        resp._content = (body if isinstance(body, str) else json.dumps(body)).encode()
        resp.url = request.url or ""
        resp.request = request
        resp.reason = "canned"
        return resp

    def close(self) -> None:
        pass


def params(req: requests.PreparedRequest) -> dict[str, str]:
    raw = req.body.decode() if isinstance(req.body, bytes) else (req.body or "")
    query = urlsplit(req.url).query
    return {k: v[0] for k, v in parse_qs(f"{query}&{raw}").items()}


def make_venue(exchange_id: str, **extra: str) -> tuple[CcxtVenue, FakeHttp]:
    exchange = getattr(ccxt, exchange_id)(
        {"apiKey": API_KEY, "secret": SECRET, "enableRateLimit": False, **extra}
    )
    http = FakeHttp()
    exchange.session.mount("https://", http)
    venue = CcxtVenue(exchange, secrets=(API_KEY, SECRET, *extra.values()))
    venue.set_markets_file(FIXTURES / f"{exchange_id}_markets.json")
    return venue, http


def spec(
    coid: str = "run1-c1", type_: str = "market", price: str | None = None, amount: str = "0.5"
) -> OrderSpec:
    return OrderSpec(
        client_order_id=coid,
        account_id="acct",
        symbol="BTC/USDT",
        side="buy",
        type=type_,
        amount=D(amount),
        price=D(price) if price else None,
    )


# --- binance ------------------------------------------------------------------------------------------

ORDER_PATH = "/api/v3/order"

BINANCE_PARTIAL = {
    "symbol": "BTCUSDT",
    "orderId": 28,
    "clientOrderId": "run1-c1",
    "transactTime": 1704067200000,
    "price": "0.00000000",
    "origQty": "0.50000000",
    "executedQty": "0.30000000",
    "cummulativeQuoteQty": "15003.00000000",
    "status": "EXPIRED",
    "timeInForce": "GTC",
    "type": "MARKET",
    "side": "BUY",
    "fills": [
        {
            "price": "50000.00",
            "qty": "0.10000000",
            "commission": "5.00000000",
            "commissionAsset": "USDT",
            "tradeId": 56,
        },
        {
            "price": "50015.00",
            "qty": "0.20000000",
            "commission": "10.00300000",
            "commissionAsset": "USDT",
            "tradeId": 57,
        },
    ],
}

BINANCE_FILLED_QUERY = {
    "symbol": "BTCUSDT",
    "orderId": 29,
    "clientOrderId": "run1-c1",
    "price": "0.00000000",
    "origQty": "0.50000000",
    "executedQty": "0.50000000",
    "cummulativeQuoteQty": "25000.00000000",
    "status": "FILLED",
    "timeInForce": "GTC",
    "type": "MARKET",
    "side": "BUY",
    "time": 1704067200000,
    "updateTime": 1704067200001,
}

BINANCE_MY_TRADES = [
    {
        "symbol": "BTCUSDT",
        "id": 71,
        "orderId": 29,
        "price": "50000.00",
        "qty": "0.50000000",
        "quoteQty": "25000.00",
        "commission": "0.00050000",
        "commissionAsset": "BTC",
        "time": 1704067200001,
        "isBuyer": True,
        "isMaker": False,
        "isBestMatch": True,
    },
]

NOT_FOUND = (400, {"code": -2013, "msg": "Order does not exist."})


def test_markets_come_from_the_injected_file_without_network():
    venue, http = make_venue("binance")
    m = venue.markets()["BTC/USDT"]
    assert m.amount_step == D("0.00001") and m.taker == D("0.001") and m.limits.cost_min == D("5")
    assert http.requests == []


def test_binance_create_sends_client_order_id_and_parses_a_partial_fill():
    venue, http = make_venue("binance")
    http.on("POST", ORDER_PATH, (200, BINANCE_PARTIAL))
    vo = venue.create_order(spec())
    sent = params(http.calls("POST", ORDER_PATH)[0])
    assert sent["newClientOrderId"] == "run1-c1" and sent["quantity"] == "0.5" and sent["type"] == "MARKET"
    assert http.calls("POST", ORDER_PATH)[0].headers["X-MBX-APIKEY"] == API_KEY
    assert vo.status == "canceled" and vo.venue_order_id == "28" and vo.client_order_id == "run1-c1"
    assert (vo.filled, vo.remaining, vo.average) == (D("0.3"), D("0.2"), D("50010"))
    assert [(t.trade_id, t.amount, t.price, t.fee.cost, t.fee.currency) for t in vo.trades] == [
        ("56", D("0.1"), D("50000"), D("5"), "USDT"),
        ("57", D("0.2"), D("50015"), D("10.003"), "USDT"),
    ]
    assert vo.trades[0].timestamp.year == 2024  # the order's transactTime


def test_binance_limit_order_sends_price_and_time_in_force():
    venue, http = make_venue("binance")
    new = {
        **BINANCE_PARTIAL,
        "status": "NEW",
        "type": "LIMIT",
        "price": "49000.00",
        "executedQty": "0",
        "fills": [],
    }
    http.on("POST", ORDER_PATH, (200, new))
    vo = venue.create_order(spec(type_="limit", price="49000"))
    sent = params(http.calls("POST", ORDER_PATH)[0])
    assert sent["price"] == "49000" and sent["timeInForce"] == "GTC"
    assert vo.status == "open" and vo.filled == 0 and vo.trades == ()


def test_binance_fetch_by_client_order_id_fetches_the_trades_it_does_not_itemize():
    venue, http = make_venue("binance")
    http.on("GET", ORDER_PATH, (200, BINANCE_FILLED_QUERY))
    http.on("GET", "/api/v3/myTrades", (200, BINANCE_MY_TRADES))
    vo = venue.fetch_order_by_client_id("BTC/USDT", "run1-c1")
    assert params(http.calls("GET", ORDER_PATH)[0])["origClientOrderId"] == "run1-c1"
    assert params(http.calls("GET", "/api/v3/myTrades")[0])["orderId"] == "29"
    assert vo is not None and vo.status == "closed"
    assert [(t.trade_id, t.amount, t.fee.cost, t.fee.currency, t.liquidity) for t in vo.trades] == [
        ("71", D("0.5"), D("0.0005"), "BTC", "taker")
    ]


def test_binance_fetch_unknown_client_order_id_is_none():
    venue, http = make_venue("binance")
    http.on("GET", ORDER_PATH, NOT_FOUND)
    assert venue.fetch_order_by_client_id("BTC/USDT", "nope") is None


@pytest.mark.parametrize(
    ("answer", "error", "code"),
    [
        (
            (400, {"code": -2010, "msg": "Account has insufficient balance for requested action."}),
            VenueTerminal,
            "insufficient_funds",
        ),
        ((400, {"code": -1013, "msg": "Filter failure: LOT_SIZE"}), VenueTerminal, "invalid_order"),
        (
            (401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}),
            VenueTerminal,
            "authentication_failed",
        ),
        ((400, {"code": -1121, "msg": "Invalid symbol."}), VenueTerminal, "bad_symbol"),
        ((429, {"code": -1003, "msg": "Too much request weight used"}), VenueRetryable, "venue_retryable"),
        (
            (400, {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."}),
            VenueRetryable,
            "venue_retryable",
        ),
        ((503, "Service Unavailable"), AmbiguousSubmit, "ambiguous_submit"),
        (
            (400, {"code": -1007, "msg": "Timeout waiting for response from backend server."}),
            AmbiguousSubmit,
            "ambiguous_submit",
        ),
        (requests.Timeout("read timed out"), AmbiguousSubmit, "ambiguous_submit"),
        (requests.ConnectionError("connection reset"), AmbiguousSubmit, "ambiguous_submit"),
    ],
    ids=[
        "insufficient",
        "invalid",
        "auth",
        "bad_symbol",
        "rate_limit",
        "nonce",
        "503",
        "1007",
        "timeout",
        "reset",
    ],
)
def test_binance_create_error_mapping(answer: Answer, error: type[Exception], code: str):
    venue, http = make_venue("binance")
    http.on("POST", ORDER_PATH, answer)
    http.on("GET", ORDER_PATH, NOT_FOUND)  # the lookup after an invalid-order rejection
    with pytest.raises(error) as info:
        venue.create_order(spec())
    assert type(info.value) is error and info.value.code == code  # type: ignore[attr-defined]
    assert API_KEY not in str(info.value) and SECRET not in str(info.value)


def test_network_errors_outside_submit_are_plainly_retryable():
    venue, http = make_venue("binance")
    http.on("GET", ORDER_PATH, requests.Timeout("slow"))
    with pytest.raises(VenueRetryable) as info:
        venue.fetch_order_by_client_id("BTC/USDT", "run1-c1")
    assert not isinstance(info.value, AmbiguousSubmit)


def test_ambiguous_timeout_then_lookup_finds_the_order_and_nothing_is_created_twice():
    venue, http = make_venue("binance")
    http.on("GET", ORDER_PATH, NOT_FOUND, (200, BINANCE_FILLED_QUERY))  # before submit: none; after: found
    http.on("POST", ORDER_PATH, requests.Timeout("read timed out"))
    http.on("GET", "/api/v3/myTrades", (200, BINANCE_MY_TRADES))
    released: list[tuple[str, str]] = []
    step = ExecuteStep(
        {"binance": venue},
        release_all=lambda c, r: released.append((c, r)),
        config=ExecutionConfig(ambiguous_lookup_delay_seconds=0),
    )
    order = spec()
    routed = OrderRouted(
        order=order,
        reservation=Reservation(currency="USDT", amount=D("25100")),
        venue="binance",
        reason="test",
    )
    out = step.run(Envelope.new(routed, stream_id="order-run1-c1", correlation_id="run1"))
    assert [p.TYPE for p in out] == ["order.submitted", "order.executed"]
    assert isinstance(out[1], OrderExecuted) and out[1].trade_id == "71" and out[1].filled_total == D("0.5")
    assert len(http.calls("POST", ORDER_PATH)) == 1
    assert released == []


def test_duplicate_client_order_id_returns_the_existing_order():
    venue, http = make_venue("binance")
    http.on("POST", ORDER_PATH, (400, {"code": -2010, "msg": "Duplicate order sent."}))
    http.on("GET", ORDER_PATH, (200, BINANCE_FILLED_QUERY))
    http.on("GET", "/api/v3/myTrades", (200, BINANCE_MY_TRADES))
    vo = venue.create_order(spec())
    assert vo.venue_order_id == "29" and len(http.calls("POST", ORDER_PATH)) == 1


def test_invalid_order_is_terminal_after_the_lookup_finds_nothing():
    venue, http = make_venue("binance")
    http.on("POST", ORDER_PATH, (400, {"code": -1013, "msg": "Filter failure: LOT_SIZE"}))
    http.on("GET", ORDER_PATH, NOT_FOUND)
    with pytest.raises(VenueTerminal):
        venue.create_order(spec())
    assert len(http.calls("GET", ORDER_PATH)) == 1


def test_keys_never_reach_logs_even_at_ccxt_debug_level(caplog: pytest.LogCaptureFixture):
    venue, http = make_venue("binance")
    http.on(
        "POST",
        ORDER_PATH,
        (400, {"code": -2010, "msg": "Account has insufficient balance for requested action."}),
    )
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(VenueTerminal) as info:
            venue.create_order(spec())
        logging.getLogger("test").error("failed: %s", info.value)
    assert "X-MBX-APIKEY" in caplog.text  # ccxt did log the request headers...
    assert API_KEY not in caplog.text and SECRET not in caplog.text  # ...with the key masked
    assert API_KEY not in repr(venue.__dict__)


# --- okx ----------------------------------------------------------------------------------------------

OKX_ACK = {
    "code": "0",
    "msg": "",
    "data": [{"clOrdId": "run1c1", "ordId": "312269865356374016", "sCode": "0", "sMsg": "", "tag": ""}],
}
OKX_ORDER = {
    "code": "0",
    "msg": "",
    "data": [
        {
            "instType": "SPOT",
            "instId": "BTC-USDT",
            "ordId": "312269865356374016",
            "clOrdId": "run1c1",
            "px": "",
            "sz": "0.5",
            "ordType": "market",
            "side": "buy",
            "tgtCcy": "base_ccy",
            "accFillSz": "0.3",
            "avgPx": "50000",
            "state": "partially_filled",
            "fillPx": "50000",
            "fillSz": "0.1",
            "tradeId": "9",
            "fee": "-0.0003",
            "feeCcy": "BTC",
            "cTime": "1704067200000",
            "uTime": "1704067201000",
        }
    ],
}
OKX_FILLS = {
    "code": "0",
    "msg": "",
    "data": [
        {
            "instType": "SPOT",
            "instId": "BTC-USDT",
            "tradeId": "8",
            "ordId": "312269865356374016",
            "clOrdId": "run1c1",
            "fillPx": "50000",
            "fillSz": "0.2",
            "side": "buy",
            "execType": "T",
            "fee": "-0.0002",
            "feeCcy": "BTC",
            "ts": "1704067200500",
            "billId": "1",
        },
        {
            "instType": "SPOT",
            "instId": "BTC-USDT",
            "tradeId": "9",
            "ordId": "312269865356374016",
            "clOrdId": "run1c1",
            "fillPx": "50000",
            "fillSz": "0.1",
            "side": "buy",
            "execType": "M",
            "fee": "-0.0001",
            "feeCcy": "BTC",
            "ts": "1704067201000",
            "billId": "2",
        },
    ],
}


def okx() -> tuple[CcxtVenue, FakeHttp]:
    return make_venue("okx", password="pa55phrase-XYZ")


def test_okx_acknowledged_create_is_completed_by_a_lookup_with_fills():
    venue, http = okx()
    http.on("POST", "/api/v5/trade/batch-orders", (200, OKX_ACK))
    http.on("GET", "/api/v5/trade/order", (200, OKX_ORDER))
    http.on("GET", "/api/v5/trade/fills-history", (200, OKX_FILLS))
    vo = venue.create_order(spec(coid="run1c1"))
    body = json.loads(http.calls("POST", "/api/v5/trade/batch-orders")[0].body)  # type: ignore[arg-type]
    assert body[0]["clOrdId"] == "run1c1" and body[0]["sz"] == "0.5"
    assert params(http.calls("GET", "/api/v5/trade/order")[0])["clOrdId"] == "run1c1"
    assert vo.status == "open" and vo.filled == D("0.3") and vo.remaining == D("0.2")
    assert [(t.trade_id, t.amount, t.fee.cost, t.fee.currency, t.liquidity) for t in vo.trades] == [
        ("8", D("0.2"), D("0.0002"), "BTC", "taker"),
        ("9", D("0.1"), D("0.0001"), "BTC", "maker"),
    ]


def test_okx_client_order_id_outside_its_alphabet_maps_to_a_stable_digest():
    venue, http = okx()
    coid = "run-1_c-1"
    mapped = venue.venue_client_id(coid)
    assert mapped == venue.venue_client_id(coid) and mapped.isalnum() and len(mapped) <= 32
    http.on("GET", "/api/v5/trade/order", (200, {"code": "51603", "msg": "Order does not exist", "data": []}))
    assert venue.fetch_order_by_client_id("BTC/USDT", coid) is None
    assert params(http.calls("GET", "/api/v5/trade/order")[0])["clOrdId"] == mapped


@pytest.mark.parametrize(
    ("answer", "error", "code"),
    [
        (
            (
                200,
                {
                    "code": "1",
                    "msg": "",
                    "data": [
                        {
                            "clOrdId": "run1c1",
                            "ordId": "",
                            "sCode": "51008",
                            "sMsg": "Order failed. Insufficient USDT balance in account.",
                        }
                    ],
                },
            ),
            VenueTerminal,
            "insufficient_funds",
        ),
        ((401, {"code": "50113", "msg": "Invalid Sign", "data": []}), VenueTerminal, "authentication_failed"),
        (
            (429, {"code": "50011", "msg": "Rate limit reached.", "data": []}),
            VenueRetryable,
            "venue_retryable",
        ),
        (requests.Timeout("read timed out"), AmbiguousSubmit, "ambiguous_submit"),
    ],
    ids=["insufficient", "auth", "rate_limit", "timeout"],
)
def test_okx_create_error_mapping(answer: Answer, error: type[Exception], code: str):
    venue, http = okx()
    http.on("POST", "/api/v5/trade/batch-orders", answer)
    http.on("GET", "/api/v5/trade/order", (200, {"code": "51603", "msg": "Order does not exist", "data": []}))
    with pytest.raises(error) as info:
        venue.create_order(spec(coid="run1c1"))
    assert type(info.value) is error and info.value.code == code  # type: ignore[attr-defined]


def test_from_config_builds_a_rate_limited_exchange_with_injected_markets():
    from zvt_pipeline.execution.config import CcxtVenueConfig
    from zvt_pipeline.secrets import from_env

    creds = from_env("binance", {"ZVT_BINANCE_API_KEY": API_KEY, "ZVT_BINANCE_SECRET": SECRET})
    venue = CcxtVenue.from_config(
        CcxtVenueConfig(exchange="binance", markets_file=FIXTURES / "binance_markets.json"), creds
    )
    assert venue.id == "binance" and venue.exchange.enableRateLimit is True
    assert venue.exchange.apiKey == API_KEY and "BTC/USDT" in venue.markets()
