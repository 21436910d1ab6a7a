"""Positions rebuilt from the real Redis event store equal the live Redis projection (hypothesis)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal as D

import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zvt_pipeline.eventstore.redis import RedisEventStore
from zvt_pipeline.messages.envelope import Envelope
from zvt_pipeline.messages.events import OrderExecuted
from zvt_pipeline.messages.types import Fee, Side
from zvt_pipeline.portfolio.rebuild import account_stream, diff, rebuild
from zvt_pipeline.portfolio.step import PortfolioStep
from zvt_pipeline.state.keys import Keys
from zvt_pipeline.step import order_stream

T0 = datetime(2024, 1, 1, tzinfo=UTC)


class NoRelease:
    def release_fill(self, client_order_id: str, filled_amount: D, order_amount: D, trade_id: str) -> None:
        pass

    def release_all(self, client_order_id: str, reason: str) -> None:
        pass


fill_specs = st.tuples(
    st.sampled_from(["a1", "a2"]),
    st.sampled_from([("paper", "BTC/USDT"), ("binance", "BTC/USDT"), ("paper", "ETH/USDT")]),
    st.sampled_from(Side),
    st.decimals(min_value=D("0.001"), max_value=D(5), places=3),
    st.decimals(min_value=D(1), max_value=D(500), places=2),
    st.sampled_from(["USDT", "BASE", "BNB"]),
)

# one of: ("deposit", account, amount) | ("fill", spec) | ("redeliver", k) | ("reemit", k); fills weigh most
new_fill = st.tuples(st.just("fill"), fill_specs)
actions = st.one_of(
    st.tuples(
        st.just("deposit"),
        st.sampled_from(["a1", "a2"]),
        st.decimals(min_value=1, max_value=10_000, places=2),
    ),
    new_fill,
    new_fill,
    new_fill,
    st.tuples(st.just("redeliver"), st.integers(min_value=0, max_value=50)),
    st.tuples(st.just("reemit"), st.integers(min_value=0, max_value=50)),
)


@given(script=st.lists(actions, min_size=10, max_size=40))
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_rebuild_from_event_store_equals_live_state(
    redis_client: redis.Redis, key_prefix: str, script: list
) -> None:
    keys = Keys(f"{key_prefix}{uuid.uuid4().hex[:8]}:")
    events = RedisEventStore(redis_client, keys=keys)
    step = PortfolioStep(redis_client, keys, NoRelease())
    triggers: list[Envelope] = []

    def process(trigger: Envelope) -> None:
        events.append(trigger.stream_id, step.handle(trigger))

    for action in script:
        if action[0] == "deposit":
            _, account, amount = action
            payload = step.store.deposit(account, "USDT", amount)
            events.append(
                account_stream(account),
                [Envelope.new(payload, stream_id=account_stream(account), correlation_id="funding")],
            )
        elif action[0] == "fill":
            account, (venue, symbol), side, amount, price, fee_kind = action[1]
            fee_currency = symbol.split("/")[0] if fee_kind == "BASE" else fee_kind
            n = len(triggers)
            payload = OrderExecuted(
                trade_id=f"t{n}", client_order_id=f"o{n}", account_id=account, venue=venue, symbol=symbol,
                side=side, amount=amount, price=price, fee=Fee(cost=D("0.001"), currency=fee_currency), timestamp=T0,
            )  # fmt: skip
            trigger = Envelope.new(payload, stream_id=order_stream(f"o{n}"), correlation_id=f"run{n}")
            events.append(trigger.stream_id, [trigger])
            triggers.append(trigger)
            process(trigger)
        elif triggers and action[0] == "redeliver":  # the bus hands the same event to the step again
            process(triggers[action[1] % len(triggers)])
        elif triggers and action[0] == "reemit":  # the venue reported the same trade again: new event id
            old = triggers[action[1] % len(triggers)]
            again = Envelope.new(old.payload, stream_id=old.stream_id, correlation_id=old.correlation_id)
            events.append(again.stream_id, [again])
            process(again)

    live = step.store.snapshot()
    rebuilt = rebuild(events.iter_all(batch=7))
    assert diff(rebuilt, live) == []
    assert rebuilt == live
