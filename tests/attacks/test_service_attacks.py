"""Attacks on the service's outgoing requests and slow-client handling (issue 22).

A callback URL is chosen by whoever holds a course token: every way of writing an internal
address must be refused, at submission when it is written as an address, and at every
delivery attempt after the name is resolved (a stub resolver plays the DNS-rebinding server).
Nothing here sends traffic anywhere but 127.0.0.1: connections are made only where a test
allows loopback explicitly, and a guard fails any test that would connect elsewhere.
"""

from __future__ import annotations

import socket

import pytest

from grader.service import callbacks
from tests.service_helpers import Receiver

PUBLIC = "93.184.216.34"  # a public address the stub resolver may answer; never connected to


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Fail the test if anything connects to an address that is not loopback."""
    real = socket.socket.connect

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if host not in ("127.0.0.1", "::1"):
            raise AssertionError(f"a connection to {address!r} was attempted")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/", "http://127.0.0.1:6379/", "http://[::1]/", "http://0.0.0.0/", "http://[::]/",
    "http://2130706433/",            # decimal 127.0.0.1
    "http://0177.0.0.1/",            # octal
    "http://0x7f.1/", "http://127.1/",
    "http://[::ffff:127.0.0.1]/",    # IPv4-mapped IPv6
    "http://[::ffff:7f00:1]/", "http://[::ffff:a9fe:a9fe]/",
    "http://[64:ff9b::7f00:1]/",     # NAT64
    "http://[2002:7f00:1::]/",       # 6to4
    "http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/", "http://100.100.100.200/",
    "http://10.0.0.1/", "http://172.16.5.4/", "http://192.168.1.1/", "http://[fc00::1]/",
    "http://224.0.0.1/", "http://255.255.255.255/", "http://[ff02::1]/", "http://240.0.0.1/",
    "http://lms@127.0.0.1/",         # userinfo
    "http://lms.example.com@127.0.0.1/", "http://127.0.0.1%2F@lms.example.com/",
    "http://lms.example.com\\@127.0.0.1/",  # a backslash some parsers read as a path
    "http://127.0.0.1 /", "gopher://lms.example.com/", "file:///etc/passwd", "http:///nohost",
])
def test_an_internal_callback_url_is_refused_at_submission(url):
    assert callbacks.check_url(url) is not None, url


def test_a_public_address_or_a_name_passes_the_submission_check():
    assert callbacks.check_url(f"https://{PUBLIC}/scores") is None
    assert callbacks.check_url("https://lms.example.com/lti/scores") is None  # checked when sent


class Stub:
    """A resolver that answers each lookup of a name with the next list of addresses."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers, self.calls = list(answers), []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


@pytest.mark.parametrize("answer", [["127.0.0.1"], ["::ffff:127.0.0.1"], ["169.254.169.254"], ["0.0.0.0"],
                                    [PUBLIC, "127.0.0.1"], ["10.9.8.7"], ["::1"]])
def test_a_name_resolving_to_an_internal_address_is_blocked_without_connecting(answer):
    status = callbacks.post("http://lms.example.com/scores", {"score": 1}, attempts=3, backoff=0,
                            egress=callbacks.Egress(resolver=Stub(answer)))
    assert status.startswith(callbacks.BLOCKED), status  # final: not retried


def test_dns_rebinding_between_attempts_is_caught_on_the_next_attempt():
    """First lookup: the (allowed) loopback LMS, which answers 503; second lookup: an internal
    address. The second attempt is blocked: the check runs on every attempt."""
    with Receiver(statuses=(503,)) as lms:
        port = int(lms.url.rsplit(":", 1)[1])
        stub = Stub(["127.0.0.1"], ["10.0.0.7"])
        egress = callbacks.Egress(callbacks.networks(["127.0.0.1/32"]), resolver=stub)
        status = callbacks.post(f"http://rebind.example:{port}/s", {"score": 1}, attempts=3, backoff=0,
                                egress=egress)
    assert status.startswith(callbacks.BLOCKED) and "10.0.0.7" in status, status
    assert len(lms.received) == 1 and stub.calls == ["rebind.example"] * 2


def test_the_connection_goes_to_the_checked_address_with_no_second_lookup(monkeypatch):
    real = socket.getaddrinfo

    def numeric_only(host, *args, **kwargs):
        flags = kwargs.get("flags", args[3] if len(args) > 3 else 0)
        if host not in ("127.0.0.1", "::1") and not flags & socket.AI_NUMERICHOST:
            raise AssertionError(f"a second lookup of {host!r}")
        return real(host, *args, **kwargs)

    with Receiver() as lms:
        port = int(lms.url.rsplit(":", 1)[1])
        stub = Stub(["127.0.0.1"])
        monkeypatch.setattr(socket, "getaddrinfo", numeric_only)
        egress = callbacks.Egress(callbacks.networks(["127.0.0.0/8"]), resolver=stub)
        status = callbacks.post(f"http://lms.internal.example:{port}/s", {"score": 1}, egress=egress,
                                key="abc-1")
        assert status == "delivered: HTTP 200", status
    assert stub.calls == ["lms.internal.example"]
    assert lms.headers[0]["Host"] == f"lms.internal.example:{port}"
    assert lms.headers[0]["Idempotency-Key"] == "abc-1"


def test_an_allow_list_entry_does_not_open_other_internal_ranges():
    egress = callbacks.Egress(callbacks.networks(["10.20.0.0/16"]))
    assert egress.why_not(__import__("ipaddress").ip_address("10.20.3.4")) is None
    for other in ("10.21.0.1", "127.0.0.1", "169.254.169.254", "::ffff:10.21.0.1"):
        assert callbacks.check_url(f"http://{other if ':' not in other else '[' + other + ']'}/", egress)
    with pytest.raises(ValueError, match="callback-allow"):
        callbacks.networks(["not-a-network"])
