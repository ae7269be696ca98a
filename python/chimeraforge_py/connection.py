"""The connection policy (core's ``ClientOptions::connection``) on httpx.

``keep-alive``: each agent its own ``httpx.AsyncClient`` (its own pool), idle connections
never expired by the client, so the agent's connection, opened by its warm-up call, carries
every later call; a request whose reused connection closed before any response byte is sent
once more on a new connection inside the same call. ``fresh``: one client for the run that
keeps no idle connection, and ``Connection: close`` on every request, so every call opens a
new connection whatever the server does. Either way every connection httpcore opens (its own
retries included) is counted per agent through httpcore's ``trace`` extension.

https (core's ``TlsTrust``): ``verify=`` an ``ssl.SSLContext`` with certifi's bundle, plus the
endpoint's ``ca_file`` when it has one, or ``False`` under ``tls_insecure``. One context per
``ca_file`` for the process, shared by every agent's client; a certificate the context rejects
fails the call with an error that names the endpoint, the URL and the fix.
"""

from __future__ import annotations

import json
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


_SSL_CONTEXTS: dict = {}


def _ssl_context(ca_file: Optional[str] = None) -> ssl.SSLContext:
    """One TLS context per ``ca_file`` for the process, shared by every agent's client: httpx
    otherwise builds one per client and loads certifi's bundle into each (N agents under
    keep-alive would pay it N times, in memory and start-up CPU)."""
    ctx = _SSL_CONTEXTS.get(ca_file)
    if ctx is None:
        ctx = ssl.create_default_context(cafile=certifi.where())
        if ca_file is not None:
            ctx.load_verify_locations(cafile=ca_file)
        _SSL_CONTEXTS[ca_file] = ctx
    return ctx


class TlsTrust:
    """How an agent's client checks its endpoint's certificate (core's ``TlsTrust``)."""

    def __init__(self, endpoint: str = "", ca_file: Optional[str] = None, insecure: bool = False):
        self.endpoint = endpoint
        self.ca_file = ca_file
        self.insecure = insecure

    @classmethod
    def of(cls, endpoint: Optional[dict]) -> "TlsTrust":
        """The trust of a RunPlan agent's ``endpoint`` (``ca_file``, ``tls_insecure``)."""
        if not endpoint:
            return cls()
        return cls(endpoint.get("name", ""), endpoint.get("ca_file"), bool(endpoint.get("tls_insecure", False)))

    def key(self) -> tuple:
        return (self.ca_file, self.insecure)

    def verify(self):
        """httpx's ``verify=``: no verification under tls_insecure, else the shared context."""
        return False if self.insecure else _ssl_context(self.ca_file)

    def certificate_error(self, url: str, reason: str) -> str:
        """As core's ``TlsTrust::certificate_error``: the endpoint, the URL and the fix."""
        if self.ca_file is not None:
            fix = (
                f"the certificate is not signed by a CA in its ca_file {self.ca_file} (nor by the "
                "usual roots): point ca_file at the PEM of the CA that signed the server's certificate"
            )
        else:
            fix = (
                'the certificate is not signed by a CA the client trusts: set ca_file = "PATH" on the '
                "endpoint to the PEM of the CA that signed it (or, for a test server only, tls_insecure = true)"
            )
        return (
            f"TLS handshake with {url} failed: endpoint {json.dumps(self.endpoint)}: the server's certificate "
            f"was rejected ({reason}); {fix}"
        )


def _certificate_rejection(e: BaseException) -> Optional[ssl.SSLCertVerificationError]:
    seen, x = set(), e
    while x is not None and id(x) not in seen:
        seen.add(id(x))
        if isinstance(x, ssl.SSLCertVerificationError):
            return x
        x = x.__cause__ or x.__context__
    return None


def new_httpx_client(connect_timeout_s: float, policy: str, trust: Optional[TlsTrust] = None) -> httpx.AsyncClient:
    """A client with no connection limit: httpx's default (100 connections) would queue every
    agent past the 100th inside ``client.send``, after its t_send, so N > 100 "concurrent"
    agents would not be concurrent (the Rust clients have no limit either). Under keep-alive
    idle connections never expire on the client's side; under fresh none is kept."""
    timeout = httpx.Timeout(connect=connect_timeout_s, read=None, write=None, pool=None)
    if policy == FRESH:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    else:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None, keepalive_expiry=None)
    verify = (trust or TlsTrust()).verify()
    return httpx.AsyncClient(timeout=timeout, limits=limits, trust_env=False, http2=False, verify=verify)


class AgentClient:
    """One agent's client (core's ``HttpClient::for_agent``): sends its requests and counts
    the connections they opened."""

    def __init__(self, client: httpx.AsyncClient, policy: str = KEEP_ALIVE, trust: Optional[TlsTrust] = None):
        if policy not in POLICIES:
            raise ValueError(f"unknown connection policy {policy!r}: use 'keep-alive' or 'fresh'")
        self.client = client
        self.policy = policy
        self.trust = trust or TlsTrust()
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
            try:
                return await self.client.send(req, stream=True)
            except (httpx.RemoteProtocolError, httpx.WriteError, httpx.ReadError) as e:
                reused = self.opened == opened
                if self.policy == KEEP_ALIVE and reused and _unanswered(e):
                    return await self.client.send(req, stream=True)
                raise
        except httpx.ConnectError as e:
            rejected = _certificate_rejection(e)
            if rejected is None:
                raise
            url = f"{req.url.scheme}://{req.url.netloc.decode('ascii', 'replace')}{req.url.raw_path.decode('ascii', 'replace')}"
            reason = getattr(rejected, "verify_message", None) or str(rejected)
            raise httpx.ConnectError(self.trust.certificate_error(url, reason), request=req) from e


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
        # Under fresh, one client per way of checking certificates (httpx's verify is per client).
        self._shared: dict = {}

    def for_agent(self, endpoint: Optional[dict] = None) -> AgentClient:
        """The client of an agent whose RunPlan ``endpoint`` says how to check its certificate."""
        trust = TlsTrust.of(endpoint)
        if self.policy == FRESH:
            shared = self._shared.get(trust.key())
            if shared is None:
                shared = new_httpx_client(self.connect_timeout_s, FRESH, trust)
                self._shared[trust.key()] = shared
                self._owned.append(shared)
            return AgentClient(shared, FRESH, trust)
        client = new_httpx_client(self.connect_timeout_s, KEEP_ALIVE, trust)
        self._owned.append(client)
        return AgentClient(client, KEEP_ALIVE, trust)

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


def for_agent(clients, endpoint: Optional[dict] = None) -> AgentClient:
    """An agent's client from the run's ``RunClients`` (checking certificates as the agent's
    ``endpoint`` says), or from a bare httpx client (tests)."""
    if isinstance(clients, RunClients):
        return clients.for_agent(endpoint)
    return agent_client(clients)
