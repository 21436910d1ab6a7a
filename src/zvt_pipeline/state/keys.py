"""Every Redis key name in one place. All keys carry the configured prefix."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "zvt:"

    # event store (Redis backend)
    def es_stream(self, stream_id: str) -> str:
        return f"{self.prefix}es:stream:{stream_id}"

    @property
    def es_all(self) -> str:
        return f"{self.prefix}es:all"

    @property
    def es_event_ids(self) -> str:
        return f"{self.prefix}es:ids"

    @property
    def es_position(self) -> str:
        return f"{self.prefix}es:pos"

    # bus
    def step_stream(self, step: str) -> str:
        return f"{self.prefix}steps:{step}"

    def dlq(self, step: str) -> str:
        return f"{self.prefix}dlq:{step}"

    def md_stream(self, kind: str) -> str:
        return f"{self.prefix}md:{kind}"

    # workflow progress
    def workflow(self, run_id: str) -> str:
        return f"{self.prefix}wf:{run_id}"

    @property
    def workflows_open(self) -> str:
        return f"{self.prefix}wf:open"

    # projections
    def position(self, account_id: str) -> str:
        """Hash: ``<venue>|<symbol>`` -> JSON position state."""
        return f"{self.prefix}pos:{account_id}"

    def balance(self, account_id: str) -> str:
        """Hash: currency -> decimal string (cash)."""
        return f"{self.prefix}bal:{account_id}"

    def reserved(self, account_id: str) -> str:
        """Hash: currency -> decimal string held by open orders."""
        return f"{self.prefix}rsv:{account_id}"

    def reservation(self, client_order_id: str) -> str:
        """Hash of one order's outstanding reservation: currency, amount, account."""
        return f"{self.prefix}rsv:order:{client_order_id}"

    def applied_trades(self, account_id: str) -> str:
        """Set of trade ids already applied to this account (exactly-once fills)."""
        return f"{self.prefix}trades:{account_id}"

    def fill_results(self, account_id: str) -> str:
        """Hash: ``<venue>|<trade_id>`` -> the ``position.updated`` payload JSON that fill produced."""
        return f"{self.prefix}fills:{account_id}"

    def order(self, client_order_id: str) -> str:
        """Hash: order index by client_order_id (status, account, run id, venue ids)."""
        return f"{self.prefix}order:{client_order_id}"

    def submit_rate(self, account_id: str) -> str:
        return f"{self.prefix}rate:{account_id}"

    @property
    def marks(self) -> str:
        """Hash: ``<venue>|<symbol>`` -> last mark price."""
        return f"{self.prefix}marks"

    def book(self, venue: str, symbol: str) -> str:
        return f"{self.prefix}book:{venue}:{symbol}"

    # execution (paper venue and venue health)
    def paper_order(self, venue: str, client_order_id: str) -> str:
        """String: JSON of one paper-venue order (spec + venue state + fills)."""
        return f"{self.prefix}paper:{venue}:order:{client_order_id}"

    def paper_resting(self, venue: str, symbol: str) -> str:
        """Sorted set: client order ids of resting paper limit orders, scored by creation time."""
        return f"{self.prefix}paper:{venue}:resting:{symbol}"

    def route_decision(self, client_order_id: str) -> str:
        """String: the execute step's first routing decision for an order (JSON), reused by re-runs."""
        return f"{self.prefix}route:{client_order_id}"

    def venue_health(self, venue: str) -> str:
        """Hash: circuit breaker state of a venue (failures, opened_at)."""
        return f"{self.prefix}venue_health:{venue}"

    @property
    def trading_state(self) -> str:
        """Hash: ``*`` (global) or account id -> ACTIVE / REDUCING / HALTED."""
        return f"{self.prefix}trading_state"

    @property
    def risk_config(self) -> str:
        return f"{self.prefix}risk:config"

    @property
    def accounts(self) -> str:
        return f"{self.prefix}accounts"

    @property
    def equity_peaks(self) -> str:
        """Hash: account id -> highest equity seen by ``risk.monitor`` (its drawdown reference)."""
        return f"{self.prefix}risk:equity_peak"

    # Lambda handlers
    def idempotency(self, function: str) -> str:
        """Prefix of a step function's powertools idempotency records (``<this>#<hash>``: JSON string)."""
        return f"{self.prefix}idem:{function}"


# Value formats shared by the components (all decimals are stored as their exact decimal text):
# - position(account):   hash "<venue>|<symbol>" -> JSON {"amount", "avg_entry_price", "realized_pnl",
#                        "fees_paid": {currency: amount}, "last_trade_id"}   (written by portfolio)
# - balance(account):    hash currency -> cash amount                          (written by portfolio)
# - applied_trades(acct): set of "<venue>|<trade_id>" applied (trade ids are unique per venue only)
# - fill_results(acct):  hash "<venue>|<trade_id>" -> PositionUpdated payload JSON    (written by portfolio)
# - reserved(account):   hash currency -> total held by open orders            (written by risk reservations)
# - reservation(coid):   hash account, currency, initial, remaining, ...       (written by risk reservations)
# - marks:               hash "<venue>|<symbol>" -> last mark price            (written by market data)
# - book(venue, symbol): string, OrderBookUpdated payload JSON                 (market data; paper venue
#                        rewrites it when an order consumes liquidity)
# - trading_state:       hash "*" or account id -> ACTIVE | REDUCING | HALTED
