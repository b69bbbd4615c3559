"""python-telegram-bot's Bot API requests over aiohttp instead of httpx.

python-telegram-bot lets the HTTP client be replaced (`telegram.request.BaseRequest`);
its default, httpx, spent ~1.9 ms of CPU per Bot API call in this process against the
fake Bot API server, aiohttp ~0.3 ms (2 shared cores, sequential sendMessage calls). A
menu click costs two calls (answerCallbackQuery, sendMessage) and a share of a
getUpdates, so the client was a fifth of the bot's CPU per update. Everything above
the wire (JSON, error mapping, retries in the outbox) is python-telegram-bot's as before.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any
from urllib.parse import urlencode

import aiohttp
import yarl
from aiohttp.helpers import get_env_proxy_for_url
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData


def _ssl_context() -> ssl.SSLContext:
    try:
        import certifi  # what httpx verified with; the system store otherwise
    except ImportError:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


class AiohttpRequest(BaseRequest):
    """Bot API calls through one aiohttp session (keep-alive, up to
    `connection_pool_size` connections). Timeouts mean what they mean for
    python-telegram-bot's HTTPXRequest; aiohttp has no write timeout of its own, so the
    whole call is also bounded by the sum of the finite timeouts."""

    def __init__(self, connection_pool_size: int = 256, read_timeout: float | None = 5.0,
                 write_timeout: float | None = 5.0, connect_timeout: float | None = 5.0,
                 pool_timeout: float | None = 1.0, media_write_timeout: float | None = 20.0):
        self._pool_size = connection_pool_size
        self._timeouts = {"read": read_timeout, "write": write_timeout,
                          "connect": connect_timeout, "pool": pool_timeout}
        self._media_write_timeout = media_write_timeout
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[tuple[str, str | None, int | None], tuple[Any, Any]] = {}

    @property
    def read_timeout(self) -> float | None:
        return self._timeouts["read"]

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._pool_size, ssl=_ssl_context())
            self._session = aiohttp.ClientSession(connector=connector)
            self._proxies.clear()

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def do_request(self, url: str, method: str, request_data: RequestData | None = None,
                         read_timeout: Any = BaseRequest.DEFAULT_NONE,
                         write_timeout: Any = BaseRequest.DEFAULT_NONE,
                         connect_timeout: Any = BaseRequest.DEFAULT_NONE,
                         pool_timeout: Any = BaseRequest.DEFAULT_NONE) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        files = request_data.multipart_data if request_data else None
        fields = request_data.json_parameters if request_data else None
        given = {"read": read_timeout, "write": write_timeout, "connect": connect_timeout,
                 "pool": pool_timeout}
        timeouts = {name: self._timeouts[name] if value is BaseRequest.DEFAULT_NONE else value
                    for name, value in given.items()}
        if files and write_timeout is BaseRequest.DEFAULT_NONE:
            timeouts["write"] = self._media_write_timeout
        finite = [t for t in timeouts.values() if t is not None]
        connect, pool = timeouts["connect"], timeouts["pool"]
        timeout = aiohttp.ClientTimeout(
            total=sum(finite) if len(finite) == len(timeouts) else None,
            # aiohttp's `connect` includes waiting for a free connection in the pool.
            connect=None if connect is None or pool is None else connect + pool,
            sock_connect=connect, sock_read=timeouts["read"])
        # Encoded here: given a dict, aiohttp builds a multipart writer (and a uuid4) for
        # every call before it settles on urlencoding.
        data: Any = urlencode(fields).encode() if fields else None
        headers = {"User-Agent": self.USER_AGENT}
        if fields:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if files:
            headers.pop("Content-Type", None)
            form = aiohttp.FormData()
            for name, value in (fields or {}).items():
                form.add_field(name, value)
            for name, (filename, content, mime_type) in files.items():
                form.add_field(name, content, filename=filename, content_type=mime_type)
            data = form
        proxy, proxy_auth = self._proxy_for(url)
        try:
            async with self._session.request(method, url, data=data, timeout=timeout,
                                             proxy=proxy, proxy_auth=proxy_auth,
                                             headers=headers) as response:
                return response.status, await response.read()
        except TimeoutError as exc:  # aiohttp's timeouts are TimeoutErrors too
            raise TimedOut from exc
        except (aiohttp.ClientError, asyncio.IncompleteReadError, OSError) as exc:
            raise NetworkError(f"aiohttp.{type(exc).__name__}: {exc}") from exc

    def _proxy_for(self, url: str) -> tuple[Any, Any]:
        """HTTP(S)_PROXY / NO_PROXY as httpx honoured them, looked up once per server
        (aiohttp's trust_env reads the environment and ~/.netrc on a thread per call)."""
        parsed = yarl.URL(url)
        key = (parsed.scheme, parsed.host, parsed.port)
        if key not in self._proxies:
            try:
                self._proxies[key] = get_env_proxy_for_url(parsed)
            except LookupError:
                self._proxies[key] = (None, None)
        return self._proxies[key]
