"""The connection policy (core's ``ClientOptions::connection``) on httpx.

``keep-alive``: each agent its own ``httpx.AsyncClient`` (its own pool), idle connections
never expired by the client, so the agent's connection, opened by its warm-up call, carries
every later call; a request whose reused connection closed before any response byte is sent
once more on a new connection inside the same call. ``fresh``: one client for the run that
keeps no idle connection, and ``Connection: close`` on every request, so every call opens a
new connection whatever the server does. Either way every connection httpcore opens (its own
retries included) is counted per agent through httpcore's ``trace`` extension.
"""

from __future__ import annotations

import ssl
from typing import Optional

import certifi
import httpx

KEEP_ALIVE = "keep-alive"
FRESH = "fresh"
POLICIES = (KEEP_ALIVE, FRESH)

# httpcore's trace event for a TCP connection it has opened.
_CONNECTED = "connection.connect_tcp.complete"
# h11 via httpcore, when the connection closed before one byte of the response head.
_UNANSWERED = "server disconnected without sending a response"


_SSL_CONTEXT: Optional[ssl.SSLContext] = None


def _ssl_context() -> ssl.SSLContext:
    """One TLS context for the process, shared by every agent's client: httpx otherwise builds
    one per client and loads certifi's bundle into each (N agents under keep-alive would pay
    it N times, in memory and start-up CPU)."""
    global _SSL_CONTEXT
    if _SSL_CONTEXT is None:
        _SSL_CONTEXT = ssl.create_default_context(cafile=certifi.where())
    return _SSL_CONTEXT


def new_httpx_client(connect_timeout_s: float, policy: str) -> httpx.AsyncClient:
    """A client with no connection limit: httpx's default (100 connections) would queue every
    agent past the 100th inside ``client.send``, after its t_send, so N > 100 "concurrent"
    agents would not be concurrent (the Rust clients have no limit either). Under keep-alive
    idle connections never expire on the client's side; under fresh none is kept."""
    timeout = httpx.Timeout(connect=connect_timeout_s, read=None, write=None, pool=None)
    if policy == FRESH:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    else:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None, keepalive_expiry=None)
    return httpx.AsyncClient(
        timeout=timeout, limits=limits, trust_env=False, http2=False, verify=_ssl_context()
    )


class AgentClient:
    """One agent's client (core's ``HttpClient::for_agent``): sends its requests and counts
    the connections they opened."""

    def __init__(self, client: httpx.AsyncClient, policy: str = KEEP_ALIVE):
        if policy not in POLICIES:
            raise ValueError(f"unknown connection policy {policy!r}: use 'keep-alive' or 'fresh'")
        self.client = client
        self.policy = policy
        self.opened = 0

    def counts(self) -> tuple:
        """(connections opened, of them replacing a kept-alive one) so far."""
        reconnects = max(self.opened - 1, 0) if self.policy == KEEP_ALIVE else 0
        return self.opened, reconnects

    async def _trace(self, event: str, info: dict) -> None:
        if event == _CONNECTED:
            self.opened += 1

    def build_request(self, method: str, url: str, content: bytes, headers: dict) -> httpx.Request:
        if self.policy == FRESH:
            headers = dict(headers, connection="close")
        req = self.client.build_request(method, url, content=content, headers=headers)
        req.extensions["trace"] = self._trace
        return req

    async def send(self, req: httpx.Request) -> httpx.Response:
        """Send ``req``, streaming; resolves at the response head. Under keep-alive, a request
        that went out on a reused connection which closed before any response byte is sent
        once more (on a new connection: the closed one left the pool)."""
        opened = self.opened
        try:
            return await self.client.send(req, stream=True)
        except (httpx.RemoteProtocolError, httpx.WriteError, httpx.ReadError) as e:
            reused = self.opened == opened
            if self.policy == KEEP_ALIVE and reused and _unanswered(e):
                return await self.client.send(req, stream=True)
            raise


def _unanswered(e: httpx.HTTPError) -> bool:
    """Closed before the response head: nothing written back (h11 says so), the request not
    written, or a reset while waiting for the head (httpcore does not say whether part of a
    head had arrived; a head cut short is rarer than a reset of an idle-closed connection)."""
    if isinstance(e, httpx.RemoteProtocolError):
        return str(e).lower().startswith(_UNANSWERED)
    return isinstance(e, (httpx.WriteError, httpx.ReadError))


class RunClients:
    """The run's clients under ``policy``: one per agent under keep-alive, one shared under
    fresh (nothing is pooled, so nothing is shared but the object)."""

    def __init__(self, connect_timeout_s: float, policy: str = KEEP_ALIVE):
        if policy not in POLICIES:
            raise ValueError(f"unknown connection policy {policy!r}: use 'keep-alive' or 'fresh'")
        self.connect_timeout_s = connect_timeout_s
        self.policy = policy
        self._owned: list = []
        self._shared: Optional[httpx.AsyncClient] = None

    def for_agent(self) -> AgentClient:
        if self.policy == FRESH:
            if self._shared is None:
                self._shared = new_httpx_client(self.connect_timeout_s, FRESH)
                self._owned.append(self._shared)
            return AgentClient(self._shared, FRESH)
        client = new_httpx_client(self.connect_timeout_s, KEEP_ALIVE)
        self._owned.append(client)
        return AgentClient(client, KEEP_ALIVE)

    async def aclose(self) -> None:
        for c in self._owned:
            await c.aclose()
        self._owned.clear()

    async def __aenter__(self) -> "RunClients":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()


def agent_client(client) -> AgentClient:
    """``client`` as an agent's client: an ``AgentClient`` as it is, a bare httpx client
    (tests) as a keep-alive one sharing its pool."""
    return client if isinstance(client, AgentClient) else AgentClient(client, KEEP_ALIVE)


def for_agent(clients) -> AgentClient:
    """An agent's client from the run's ``RunClients``, or from a bare httpx client (tests)."""
    if isinstance(clients, RunClients):
        return clients.for_agent()
    return agent_client(clients)
