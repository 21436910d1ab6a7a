"""Powertools idempotency on Redis, keyed by the trigger event ids.

The steps are idempotent on their own (deterministic event ids, state changes keyed by run), so this layer
is not what keeps the books right. What it adds at the Lambda edge: a re-delivered trigger (SQS at-least-once,
a retried invoke) gets the first answer back without running the step again, and two invocations racing on
the same trigger do not both run it (the second fails with ``InvocationInProgress``, retryable).

The key is ``<key prefix>idem:<function>#<md5 of step, completes and the trigger event ids>``: the trigger
*ids*, not their bodies, identify the work, as in the event store. Records live under the deployment's key
prefix (one Redis, several deployments) and expire after ``expires_after_seconds``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import redis

from zvt_pipeline.state.keys import Keys

Runner = Callable[..., dict[str, Any]]


def idempotency_key_data(step: str, completes: bool, event_ids: list[str]) -> dict[str, Any]:
    """What the key is hashed from."""
    return {"step": step, "completes": completes, "triggers": event_ids}


class IdempotentRunner:
    """Wraps ``fn(*, key, **kwargs) -> dict`` with powertools' ``idempotent_function``.

    ``client``: the runtime's Redis client. Passing it (rather than a URL) reuses its TLS choice
    (``rediss://`` on, ``redis://`` off — powertools' own connection defaults to ``ssl=True``), its AUTH token
    from Secrets Manager and unix sockets for the embedded Redis."""

    def __init__(
        self,
        fn: Runner,
        client: redis.Redis,
        keys: Keys,
        function: str,
        *,
        expires_after_seconds: int = 3600,
    ) -> None:
        from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
        from aws_lambda_powertools.utilities.idempotency.persistence.cache import CachePersistenceLayer

        self.config = IdempotencyConfig(
            expires_after_seconds=expires_after_seconds, raise_on_no_idempotency_key=True
        )
        with warnings.catch_warnings():
            # powertools 3.x: CachePersistenceLayer (the v4 name) is still an alias of the deprecated
            # RedisCachePersistenceLayer class, so creating it warns either way.
            warnings.simplefilter("ignore", DeprecationWarning)
            self.persistence = CachePersistenceLayer(client=client)
        self.key_prefix = keys.idempotency(function)
        self._run = idempotent_function(
            fn,
            data_keyword_argument="key",
            persistence_store=self.persistence,
            config=self.config,
            key_prefix=self.key_prefix,
        )

    def __call__(self, context: Any, *, key: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        # The remaining time bounds the in-progress lock: a run killed by the Lambda timeout does not
        # block its retry for the whole expiry.
        if context is not None and hasattr(context, "get_remaining_time_in_millis"):
            self.config.register_lambda_context(context)
        return self._run(key=key, **kwargs)
