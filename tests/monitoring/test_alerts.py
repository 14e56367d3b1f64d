"""Alerts through the SDK, and webhook delivery against real HTTP servers on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response

from loopwise.context import Context
from loopwise.errors import InvalidArgumentError
from loopwise.monitoring import (
    list_alerts,
    raise_alert,
    resolve_alert,
    send_webhook,
    webhook_body,
)
from loopwise.store import Alert

from ..server.harness import free_port, serve_in_thread


class Receiver:
    """A webhook receiver that answers ``failures`` with 503 first, then ``final_status``."""

    def __init__(self) -> None:
        self.failures = 0
        self.final_status = 200
        self.delay_s = 0.0
        self.bodies: list[Any] = []
        self.content_types: list[str] = []
        self.app = FastAPI()

        @self.app.post("/hook")
        async def hook(request: Request) -> Response:
            self.bodies.append(json.loads(await request.body()))
            self.content_types.append(request.headers.get("content-type", ""))
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if self.failures > 0:
                self.failures -= 1
                return Response("busy", status_code=503)
            return Response("ok", status_code=self.final_status)


@pytest.fixture(autouse=True)
def _loopback_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The receivers run on loopback, which an operator allows explicitly."""
    monkeypatch.setenv("LOOPWISE_ALLOW_OUTBOUND_HOSTS", "127.0.0.1")


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver()
    with serve_in_thread(receiver.app) as url:
        yield receiver, f"{url}/hook"


@pytest.fixture
def receiver(server: tuple[Receiver, str]) -> Iterator[tuple[Receiver, str]]:
    receiver, url = server
    receiver.failures, receiver.final_status, receiver.delay_s = 0, 200, 0.0
    receiver.bodies.clear()
    receiver.content_types.clear()
    yield receiver, url


@pytest.fixture
def alert(ctx: Context) -> Alert:
    raised, _ = raise_alert(
        "accuracy_drop",
        fingerprint="accuracy/employment",
        message="Accuracy fell from 0.83 to 0.71",
        severity="critical",
        deployment="employment",
        details={"metric": "accuracy", "reference": 0.83, "current": 0.71},
        window_start_ms=1_704_067_200_000,
        window_end_ms=1_704_153_600_000,
    )
    return raised


def test_sdk_raises_lists_and_resolves(ctx: Context, alert: Alert) -> None:
    again, created = raise_alert(
        "accuracy_drop", fingerprint="accuracy/employment", message="Still low: 0.70"
    )
    assert not created and again.id == alert.id and again.occurrences == 2
    assert again.severity == "warning"  # each raise says its own severity
    assert [a.id for a in list_alerts()] == [alert.id]
    assert list_alerts("other-deployment") == []
    resolved = resolve_alert(alert.id)
    assert resolved.status == "resolved"
    assert list_alerts() == []
    assert [a.id for a in list_alerts(status=None)] == [alert.id]
    assert [a.id for a in list_alerts(status="resolved")] == [alert.id]


def test_delivered_body_carries_the_alert_and_a_text(
    receiver: tuple[Receiver, str], alert: Alert
) -> None:
    got, url = receiver
    delivery = send_webhook(url, alert)
    assert (delivery.ok, delivery.attempts, delivery.status_code, delivery.error) == (
        True,
        1,
        200,
        None,
    )
    assert got.content_types == ["application/json"]
    body = got.bodies[0]
    assert {k: v for k, v in body.items() if k != "text"} == dataclasses.asdict(alert)
    assert body["text"].startswith("[CRITICAL] test/employment accuracy_drop: Accuracy fell")
    assert f"alert {alert.id}" in body["text"] and "seen 1 time since" in body["text"]


def test_a_server_that_fails_twice_gets_the_third_try(
    receiver: tuple[Receiver, str], alert: Alert
) -> None:
    got, url = receiver
    got.failures = 2
    delivery = send_webhook(url, alert, retries=3, backoff_s=0.01)
    assert (delivery.ok, delivery.attempts, delivery.status_code) == (True, 3, 200)
    assert len(got.bodies) == 3 and got.bodies[0] == got.bodies[2]


def test_retries_run_out_on_a_failing_server(
    receiver: tuple[Receiver, str], alert: Alert, caplog: pytest.LogCaptureFixture
) -> None:
    got, url = receiver
    got.failures = 10
    with caplog.at_level(logging.WARNING, logger="loopwise.monitoring.alerts"):
        delivery = send_webhook(url, alert, retries=2, backoff_s=0.01)
    assert (delivery.ok, delivery.attempts, delivery.status_code) == (False, 3, 503)
    assert delivery.error is not None and "HTTP 503" in delivery.error
    assert "not delivered" in caplog.text


def test_a_refusal_is_not_retried(receiver: tuple[Receiver, str], alert: Alert) -> None:
    got, url = receiver
    got.final_status = 400
    delivery = send_webhook(url, alert, retries=3, backoff_s=0.01)
    assert (delivery.ok, delivery.attempts, delivery.status_code) == (False, 1, 400)
    assert len(got.bodies) == 1


def test_a_slow_server_times_out_and_is_retried(
    receiver: tuple[Receiver, str], alert: Alert
) -> None:
    got, url = receiver
    got.delay_s = 1.0
    delivery = send_webhook(url, alert, timeout_s=0.2, retries=1, backoff_s=0.01)
    assert (delivery.ok, delivery.attempts, delivery.status_code) == (False, 2, None)
    assert delivery.error is not None and "Timeout" in delivery.error


def test_a_server_that_is_down_is_reported_not_raised(
    alert: Alert, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    with caplog.at_level(logging.WARNING, logger="loopwise.monitoring.alerts"):
        delivery = send_webhook(url, alert, retries=2, backoff_s=0.01)
    assert (delivery.ok, delivery.attempts, delivery.status_code) == (False, 3, None)
    assert delivery.error is not None and "ConnectError" in delivery.error
    assert f"Alert {alert.id} was not delivered" in caplog.text


def test_resolved_alert_text(ctx: Context, alert: Alert) -> None:
    body = webhook_body(resolve_alert(alert.id))
    assert body["text"].startswith("[RESOLVED] test/employment accuracy_drop")
    assert body["status"] == "resolved" and body["resolved_ms"] is not None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"url": "ftp://example.com/hook"}, "http:// or https://"),
        ({"url": None}, "http:// or https://"),
        ({"retries": -1}, "retries"),
        ({"retries": 1.5}, "retries"),
        ({"timeout_s": -1}, "timeout_s"),
        ({"backoff_s": float("nan")}, "backoff_s"),
        ({"alert": {"id": 1}}, "Expected an Alert"),
    ],
)
def test_bad_delivery_arguments(alert: Alert, kwargs: dict[str, Any], match: str) -> None:
    arguments: dict[str, Any] = {"url": "http://127.0.0.1:9/hook", "alert": alert, **kwargs}
    url, target = arguments.pop("url"), arguments.pop("alert")
    with pytest.raises(InvalidArgumentError, match=match):
        send_webhook(url, target, **arguments)


def test_a_webhook_on_an_address_the_operator_did_not_allow_is_not_sent(
    receiver: tuple[Receiver, str], alert: Alert, monkeypatch: pytest.MonkeyPatch
) -> None:
    got, url = receiver
    monkeypatch.delenv("LOOPWISE_ALLOW_OUTBOUND_HOSTS")
    delivery = send_webhook(url, alert, retries=2, backoff_s=0.01)
    assert (delivery.ok, delivery.attempts, delivery.status_code) == (False, 1, None)
    assert delivery.error is not None and "LOOPWISE_ALLOW_OUTBOUND_HOSTS" in delivery.error
    assert got.bodies == []


def test_a_receivers_answer_is_not_repeated(receiver: tuple[Receiver, str], alert: Alert) -> None:
    got, url = receiver
    got.final_status = 400
    delivery = send_webhook(url, alert, retries=0)
    assert delivery.error == "HTTP 400"  # not the body it answered ("ok")
