"""Alerts: raise, list and resolve them in the current project, and deliver them to a webhook.

The store keeps alerts and deduplicates them by fingerprint (``Store.raise_alert``). Delivery
is best effort by design: ``send_webhook`` retries transient failures, then reports and logs
the failure instead of raising, so a monitor's loop never stops on a chat service being down.
See docs/alerts.md.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import httpx

from loopwise.context import current
from loopwise.errors import InvalidArgumentError, PermissionDeniedError
from loopwise.outbound import fetch
from loopwise.store import Alert

__all__ = [
    "WebhookDelivery",
    "list_alerts",
    "raise_alert",
    "resolve_alert",
    "send_webhook",
    "webhook_body",
]

log = logging.getLogger(__name__)
MAX_BACKOFF_S = 30.0
MAX_ANSWER_BYTES = 64 * 1024
"""A receiver's answer is read this far at most (only its status is used)."""


# -- the SDK over the store ------------------------------------------------------------------------
def raise_alert(
    rule: str,
    *,
    fingerprint: str,
    message: str,
    severity: Literal["info", "warning", "critical"] = "warning",
    deployment: str | None = None,
    details: Mapping[str, Any] | None = None,
    window_start_ms: int | None = None,
    window_end_ms: int | None = None,
) -> tuple[Alert, bool]:
    """Open an alert in the current project, or update the open one with this fingerprint.

    Returns ``(alert, created)``: ``created`` is False for a repeat, which adds one to
    ``occurrences`` and takes the new severity, message, details and window.
    """
    ctx = current()
    return ctx.store.raise_alert(
        ctx.project,
        deployment=deployment,
        rule=rule,
        severity=severity,
        fingerprint=fingerprint,
        message=message,
        details=details,
        window_start_ms=window_start_ms,
        window_end_ms=window_end_ms,
    )


def list_alerts(
    deployment: str | None = None,
    *,
    status: Literal["open", "resolved"] | None = "open",
    since_ms: int | None = None,
    limit: int = 100,
) -> list[Alert]:
    """The current project's alerts, most recently seen first (``status=None``: all)."""
    ctx = current()
    return ctx.store.list_alerts(
        ctx.project, deployment=deployment, status=status, since_ms=since_ms, limit=limit
    )


def resolve_alert(alert_id: int) -> Alert:
    """Close an alert; the next raise of its fingerprint opens a new one."""
    ctx = current()
    return ctx.store.resolve_alert(ctx.project, alert_id)


# -- webhook delivery ------------------------------------------------------------------------------
@dataclass(frozen=True)
class WebhookDelivery:
    """How delivering one alert went."""

    ok: bool
    attempts: int
    status_code: int | None
    """The last response's HTTP status (None: no response, e.g. the host was down)."""
    error: str | None
    """Why it failed, in words (None when delivered)."""
    elapsed_s: float


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def webhook_body(alert: Alert) -> dict[str, Any]:
    """The JSON a webhook receives: every field of the alert, plus ``text``, a one-line summary
    that Slack-compatible incoming webhooks (Slack, Mattermost, Rocket.Chat …) display."""
    if not isinstance(alert, Alert):
        raise InvalidArgumentError(
            f"Expected an Alert (from raise_alert or list_alerts), got {type(alert).__name__}.",
            parameter="alert",
        )
    label = "RESOLVED" if alert.status == "resolved" else alert.severity.upper()
    where = f"{alert.project}/{alert.deployment}" if alert.deployment else alert.project
    text = (
        f"[{label}] {where} {alert.rule}: {alert.message} (alert {alert.id}, seen "
        f"{alert.occurrences} time{'s' if alert.occurrences != 1 else ''} since "
        f"{_when(alert.first_seen_ms)})"
    )
    return {**dataclasses.asdict(alert), "text": text}


def _check_delivery(url: object, timeout_s: object, retries: object, backoff_s: object) -> str:
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise InvalidArgumentError(
            f"Expected url as an http:// or https:// address, got {str(url)[:200]!r}.",
            parameter="url",
        )
    for name, value in (("timeout_s", timeout_s), ("backoff_s", backoff_s)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise InvalidArgumentError(
                f"Expected {name} as a number of seconds >= 0, got {value!r}.", parameter=name
            )
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 20:
        raise InvalidArgumentError(
            f"Expected retries as an integer from 0 to 20, got {retries!r}.",
            parameter="retries",
        )
    return url


def send_webhook(
    url: str,
    alert: Alert,
    *,
    timeout_s: float = 5.0,
    retries: int = 3,
    backoff_s: float = 0.5,
    transport: httpx.BaseTransport | None = None,
) -> WebhookDelivery:
    """POST ``webhook_body(alert)`` to ``url``; never raises on a failed delivery.

    A connection error, a timeout, a 5xx or a 429 is retried up to ``retries`` times, waiting
    ``backoff_s``, then twice as long each time (with jitter, at most 30 s). Any other 4xx is
    final: sending the same body again would not help. The result says how it went; failures
    are also logged (logger ``loopwise.monitoring.alerts``).

    ``url`` is reached through ``loopwise.outbound``: a host whose addresses are not public
    (loopback, private, link-local …) is refused, with no attempt, unless the operator allows
    it (``LOOPWISE_ALLOW_OUTBOUND_HOSTS``); redirects are not followed.
    """
    target = _check_delivery(url, timeout_s, retries, backoff_s)
    body = webhook_body(alert)
    started = time.monotonic()
    status: int | None = None
    error = ""
    attempts = 0
    shown = target if len(target) <= 200 else target[:200] + "…"
    for attempts in range(1, retries + 2):
        try:
            response = fetch(
                "POST",
                target,
                json=body,
                timeout_s=timeout_s,
                max_bytes=MAX_ANSWER_BYTES,
                transport=transport,
            )
            status = response.status_code
            if 200 <= status < 300:
                return WebhookDelivery(True, attempts, status, None, _since(started))
            error = f"HTTP {status}"  # the answer itself is the receiver's, never repeated
            if status < 500 and status != 429:
                break  # the receiver refused this body: a retry would be refused too
        except PermissionDeniedError as exc:  # not an address the operator allows
            status, error = None, exc.message
            break
        except httpx.HTTPError as exc:  # connection refused, timeout, broken response
            status = None
            error = f"{type(exc).__name__}: {str(exc)[:200]}"
        if attempts <= retries:
            wait_s = min(backoff_s * 2 ** (attempts - 1), MAX_BACKOFF_S)
            log.info("Webhook %s failed (%s); retrying in %.2f s", shown, error, wait_s)
            time.sleep(wait_s * (0.5 + random.random() / 2))
    log.warning(
        "Alert %s was not delivered to %s after %d attempt(s): %s",
        alert.id,
        shown,
        attempts,
        error,
    )
    return WebhookDelivery(False, attempts, status, error, _since(started))


def _since(started: float) -> float:
    return time.monotonic() - started
