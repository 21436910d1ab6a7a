"""Reservations on a real Redis: exact money, idempotent retries and releases, rate window, duplicates."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zvt_pipeline.messages.commands import OrderSpec
from zvt_pipeline.messages.events import Reservation
from zvt_pipeline.messages.types import OrderType, Side
from zvt_pipeline.risk.reservations import RateLimit, Reservations
from zvt_pipeline.state.keys import Keys

D = Decimal
NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
ACCOUNT = "acc"


def order(
    coid: str = "c1", *, side: Side = Side.BUY, amount: str = "0.1", account: str = ACCOUNT
) -> OrderSpec:
    return OrderSpec(
        client_order_id=coid,
        account_id=account,
        symbol="BTC/USDT",
        side=side,
        type=OrderType.LIMIT,
        amount=D(amount),
        price=D("60000"),
        created_at=NOW,
    )


def usdt(amount: str) -> Reservation:
    return Reservation(currency="USDT", amount=D(amount))


@pytest.fixture
def rsv(redis_client: redis.Redis, keys: Keys) -> Reservations:
    return Reservations(redis_client, keys)


def fund(
    client: redis.Redis, keys: Keys, amount: str, currency: str = "USDT", account: str = ACCOUNT
) -> None:
    client.hset(keys.balance(account), currency, amount)


def reserved(client: redis.Redis, keys: Keys, currency: str = "USDT", account: str = ACCOUNT) -> str | None:
    raw = client.hget(keys.reserved(account), currency)
    return None if raw is None else raw.decode()


def test_reserve_writes_reservation_total_and_index(
    redis_client: redis.Redis, keys: Keys, rsv: Reservations
) -> None:
    fund(redis_client, keys, "10000")
    result = rsv.reserve(order(), usdt("6006"), "run-1", NOW, None, checks=("trading_state",))
    assert result.ok and not result.replayed
    assert result.checks == ("trading_state", "duplicate_client_order_id", "rate_limit", "free_balance")
    assert reserved(redis_client, keys) == "6006"
    assert rsv.outstanding("c1") == D("6006")
    state = rsv.reservation_state("c1")
    assert {
        k: state[k] for k in ("account", "currency", "initial", "remaining", "held_against", "run_id")
    } == {
        "account": ACCOUNT,
        "currency": "USDT",
        "initial": "6006",
        "remaining": "6006",
        "held_against": "cash",
        "run_id": "run-1",
    }
    index = {k.decode(): v.decode() for k, v in redis_client.hgetall(keys.order("c1")).items()}
    assert (index["run_id"], index["account_id"], index["status"]) == ("run-1", ACCOUNT, "validated")


def test_free_balance_is_cash_minus_reserved_with_the_numbers(
    redis_client: redis.Redis, keys: Keys, rsv: Reservations
) -> None:
    fund(redis_client, keys, "10000")
    assert rsv.reserve(order("c1"), usdt("6006"), "r1", NOW, None).ok
    result = rsv.reserve(order("c2"), usdt("6006"), "r2", NOW, None)
    assert not result.ok and result.rule == "free_balance"
    assert result.reason == "free USDT 3994 < required 6006 USDT (balance 10000, reserved 6006)"
    assert result.details["free"] == "3994"
    assert reserved(redis_client, keys) == "6006"
    assert rsv.outstanding("c2") == 0


def test_retry_of_the_same_run_is_idempotent(
    redis_client: redis.Redis, keys: Keys, rsv: Reservations
) -> None:
    fund(redis_client, keys, "10000")
    first = rsv.reserve(order(), usdt("6006"), "run-1", NOW, RateLimit(10, 1))
    again = rsv.reserve(order(), usdt("6006"), "run-1", NOW + timedelta(seconds=5), RateLimit(10, 1))
    assert again.ok and again.replayed
    assert again.reservation == first.reservation and again.checks == first.checks
    assert reserved(redis_client, keys) == "6006"
    assert redis_client.zcard(keys.submit_rate(ACCOUNT)) == 1


def test_a_recorded_rejection_is_replayed_even_after_funds_arrive(
    redis_client: redis.Redis, keys: Keys, rsv: Reservations
) -> None:
    fund(redis_client, keys, "100")
    first = rsv.reserve(order(), usdt("6006"), "run-1", NOW, None)
    assert first.rule == "free_balance"
    fund(redis_client, keys, "1000000")
    again = rsv.reserve(order(), usdt("6006"), "run-1", NOW, None)
    assert (again.ok, again.replayed, again.rule, again.reason) == (False, True, "free_balance", first.reason)
    assert again.details == first.details
    assert reserved(redis_client, keys) is None


def test_duplicate_client_order_id_from_another_run(
    redis_client: redis.Redis, keys: Keys, rsv: Reservations
) -> None:
    fund(redis_client, keys, "100000")
    assert rsv.reserve(order(), usdt("6006"), "run-1", NOW, None).ok
    dup = rsv.reserve(order(), usdt("6006"), "run-2", NOW, None)
    assert not dup.ok and dup.rule == "duplicate_client_order_id"
    assert dup.reason == "client_order_id c1 is already used by run run-1 (status validated)"
    assert reserved(redis_client, keys) == "6006"


def test_record_rejection_is_create_only(redis_client: redis.Redis, keys: Keys, rsv: Reservations) -> None:
    first = rsv.record_rejection(
        order(), "run-1", NOW, rule="max_notional", reason="too big", details={"a": "1"}
    )
    assert (first.ok, first.replayed, first.rule) == (False, False, "max_notional")
    again = rsv.record_rejection(order(), "run-1", NOW, rule="price_band", reason="other", details={})
    assert (again.replayed, again.rule, again.reason, again.details) == (
        True,
        "max_notional",
        "too big",
        {"a": "1"},
    )
    other = rsv.record_rejection(order(), "run-2", NOW, rule="price_band", reason="x", details={})
    assert other.rule == "duplicate_client_order_id"


def test_rate_limit_sliding_window(redis_client: redis.Redis, keys: Keys, rsv: Reservations) -> None:
    fund(redis_client, keys, "1000000")
    limit = RateLimit(max_orders=3, window_seconds=1.0)
    for n, offset_ms in enumerate((0, 300, 600)):
        assert rsv.reserve(
            order(f"c{n}"), usdt("1"), f"r{n}", NOW + timedelta(milliseconds=offset_ms), limit
        ).ok
    blocked = rsv.reserve(order("c3"), usdt("1"), "r3", NOW + timedelta(milliseconds=999), limit)
    assert blocked.rule == "rate_limit"
    assert blocked.reason == "3 orders accepted for account acc in the last 1 s >= max 3"
    # the first order (t=0) leaves the window at t=1000 ms: one slot frees up, only one
    assert rsv.reserve(order("c4"), usdt("1"), "r4", NOW + timedelta(milliseconds=1000), limit).ok
    late = rsv.reserve(order("c5"), usdt("1"), "r5", NOW + timedelta(milliseconds=1001), limit)
    assert late.rule == "rate_limit"
    # rejected orders do not count; other accounts have their own window
    fund(redis_client, keys, "10", account="other")
    assert rsv.reserve(order("c6", account="other"), usdt("1"), "r6", NOW, limit).ok
    assert reserved(redis_client, keys) == "4"


def test_exact_money_beyond_float_precision(redis_client: redis.Redis, keys: Keys, rsv: Reservations) -> None:
    fund(redis_client, keys, "12345678901234567890.123456789012345679")
    amount = "12345678901234567890.123456789012345678"
    assert rsv.reserve(order("c1"), usdt(amount), "r1", NOW, None).ok
    assert reserved(redis_client, keys) == amount
    tiny = rsv.reserve(order("c2"), usdt("0.000000000000000002"), "r2", NOW, None)
    assert tiny.rule == "free_balance" and "free USDT 0.000000000000000001" in tiny.reason
    assert rsv.reserve(order("c3"), usdt("0.000000000000000001"), "r3", NOW, None).ok
    assert reserved(redis_client, keys) == "12345678901234567890.123456789012345679"


def test_release_fills_exactly_once_and_release_all_the_rest(
    redis_client: redis.Redis, keys: Keys, rsv: Reservations
) -> None:
    fund(redis_client, keys, "10000")
    assert rsv.reserve(order(), usdt("6006"), "r1", NOW, None).ok
    assert rsv.release_fill("c1", D("0.03"), D("0.1"), "t1") == D("1801.8")
    assert rsv.release_fill("c1", D("0.03"), D("0.1"), "t1") == 0  # same trade again: nothing
    assert rsv.outstanding("c1") == D("4204.2")
    assert reserved(redis_client, keys) == "4204.2"
    assert rsv.release_fill("c1", D("0.03"), D("0.1"), "t2") == D("1801.8")
    assert rsv.release_all("c1", "filled") == D("2402.4")
    assert rsv.release_all("c1", "filled") == 0
    assert rsv.release_all("c1", "canceled") == 0
    assert rsv.outstanding("c1") == 0
    assert reserved(redis_client, keys) is None  # total back to zero: field removed


def test_uneven_shares_round_down_and_never_exceed_the_initial(
    redis_client: redis.Redis, keys: Keys, rsv: Reservations
) -> None:
    fund(redis_client, keys, "1000")
    assert rsv.reserve(order(amount="3"), usdt("100"), "r1", NOW, None).ok
    released = [rsv.release_fill("c1", D("1"), D("3"), f"t{n}") for n in range(3)]
    assert released == [D("33.333333333333333333")] * 3
    assert rsv.outstanding("c1") == D("0.000000000000000001")
    assert rsv.release_fill("c1", D("1"), D("3"), "t-extra") == D("0.000000000000000001")  # capped
    assert rsv.release_all("c1", "filled") == 0
    assert reserved(redis_client, keys) is None


def test_release_of_unknown_order_is_zero(rsv: Reservations) -> None:
    assert rsv.release_fill("nope", D("1"), D("1"), "t") == 0
    assert rsv.release_all("nope", "canceled") == 0
    assert rsv.outstanding("nope") == 0
    with pytest.raises(ValueError):
        rsv.release_fill("nope", D("0"), D("1"), "t")


def test_sell_of_a_long_is_held_against_the_position(
    redis_client: redis.Redis, keys: Keys, rsv: Reservations
) -> None:
    redis_client.hset(
        keys.position(ACCOUNT),
        mapping={
            "paper|BTC/USDT": orjson.dumps({"amount": "0.2", "avg_entry_price": "60000"}),
            "binance|BTC/USDT": orjson.dumps({"amount": "0.1", "avg_entry_price": "60000"}),
            "paper|ETH/USDT": orjson.dumps({"amount": "5", "avg_entry_price": "3000"}),
        },
    )
    btc = Reservation(currency="BTC", amount=D("0.2"))
    sell = order("s1", side=Side.SELL, amount="0.2")
    assert rsv.reserve(sell, btc, "r1", NOW, None, held_against="position").ok
    second = rsv.reserve(
        order("s2", side=Side.SELL, amount="0.2"), btc, "r2", NOW, None, held_against="position"
    )
    assert second.rule == "free_balance"
    assert second.reason == "free BTC 0.1 < required 0.2 BTC (long position BTC/USDT 0.3, reserved 0.2)"
    assert reserved(redis_client, keys, "BTC") == "0.2"


# --- property: accounting never goes negative and releases never exceed what was held -----------------

fill_amounts = st.decimals(min_value=D("0.001"), max_value=D("2"), places=3)
operations = st.lists(
    st.tuples(
        st.integers(0, 3),  # which order
        st.sampled_from(["fill", "fill", "fill", "all"]),
        fill_amounts,
        st.integers(0, 5),  # trade id: small range so repeats happen
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    initials=st.lists(
        st.decimals(min_value=D("0.01"), max_value=D("100000"), places=8), min_size=1, max_size=4
    ),
    order_amount=st.decimals(min_value=D("0.01"), max_value=D("3"), places=3),
    ops=operations,
)
def test_reserve_release_accounting_property(
    redis_client: redis.Redis, keys: Keys, initials: list[Decimal], order_amount: Decimal, ops: list
) -> None:
    rsv = Reservations(redis_client, keys)
    account = f"p{uuid.uuid4().hex[:12]}"
    balance = sum(initials, D(0))
    fund(redis_client, keys, str(balance), account=account)
    coids = []
    for n, initial in enumerate(initials):
        coid = f"{account}-{n}"
        o = order(coid, amount=str(order_amount), account=account)
        assert rsv.reserve(o, usdt(str(initial)), coid, NOW, None).ok
        coids.append(coid)
    released = {c: D(0) for c in coids}
    for which, kind, amount, trade in ops:
        coid = coids[which % len(coids)]
        if kind == "fill":
            got = rsv.release_fill(coid, amount, order_amount, f"t{trade}")
        else:
            got = rsv.release_all(coid, f"reason{trade}")
        assert got >= 0
        released[coid] += got
        total_outstanding = D(0)
        for c, initial in zip(coids, initials, strict=True):
            outstanding = rsv.outstanding(c)
            assert outstanding >= 0
            assert released[c] + outstanding == initial  # exact conservation
            total_outstanding += outstanding
        held = D(reserved(redis_client, keys, account=account) or "0")
        assert held == total_outstanding
        assert balance - held >= 0
