"""Who is calling: the replica's table of API keys, kept current from the persistence
service, and the Authenticator that reads a call's key.

Keys are data (database 0, created and revoked by `python -m infra.admin keys`). The
table maps each live key's SHA-256 to its account; it is loaded before the replica
reports SERVING (no table, no start) and then polled every `refresh_s` for the changes
after the newest revision it has, so a revocation reaches every replica within about
`refresh_s`. While persistence cannot be reached the replica keeps the table it has
(the keys valid when it last heard) and says so in its log.
"""

from __future__ import annotations

import asyncio
import time

import grpc
from bourse.persistence.v1 import persistence_service_pb2 as persistence_pb2

from services.common.api_keys import key_hash
from services.common.errors import BourseError

PAGE = 1000
# Keys are 46 characters (services/common/api_keys.py); a longer "key" is not hashed.
MAX_KEY_CHARS = 256
_CALL_TIMEOUT_S = 5.0


class ApiKeys:
    def __init__(self, persistence, log, refresh_s: float = 1.0):
        self._persistence = persistence  # a PersistenceServiceStub (grpc.aio)
        self._log = log
        self.refresh_s = refresh_s
        self._accounts: dict[bytes, int] = {}
        self.revision = 0
        self._task: asyncio.Task | None = None

    def account_of_key(self, key: str) -> int | None:
        return self._accounts.get(key_hash(key))

    def __len__(self) -> int:
        return len(self._accounts)

    async def refresh(self) -> None:
        """Applies every change after the newest revision seen."""
        while True:
            page = await self._persistence.ListApiKeys(
                persistence_pb2.ListApiKeysRequest(after_revision=self.revision, page_size=PAGE),
                timeout=_CALL_TIMEOUT_S)
            for key in page.keys:
                if key.HasField("revoke_time"):
                    self._accounts.pop(key.key_hash, None)
                else:
                    self._accounts[key.key_hash] = key.account_id
                self.revision = key.revision
            if len(page.keys) < PAGE:
                return

    async def load(self, wait_s: float) -> None:
        """The first refresh, retried for up to `wait_s` (persistence may start after us);
        SystemExit when there is still no key source by then."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                await self.refresh()
                break
            except grpc.aio.AioRpcError as error:
                if time.monotonic() > deadline:
                    raise SystemExit(f"no key source: cannot read API keys from persistence ({error.code().name}: "
                                     f"{error.details()})") from error
                self._log.warning("waiting_for_api_keys", error=error.code().name)
                await asyncio.sleep(0.5)
        if not self._accounts:
            self._log.warning("no_api_keys", hint="create one: python -m infra.admin keys create --account N")
        self._log.info("api_keys_loaded", keys=len(self._accounts), revision=self.revision)
        self._task = asyncio.create_task(self._keep_current())

    async def _keep_current(self) -> None:
        stale_since = None
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self.refresh()
                if stale_since is not None:
                    self._log.info("api_keys_current_again", stale_s=round(time.monotonic() - stale_since, 1))
                    stale_since = None
            except grpc.aio.AioRpcError as error:
                if stale_since is None:
                    stale_since = time.monotonic()
                    self._log.warning("api_keys_stale", error=error.code().name,
                                      why="persistence unreachable: revocations wait for it")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


class Authenticator:
    def __init__(self, keys):
        self._keys = keys  # anything with account_of_key(key) -> account_id | None

    def account_of(self, context: grpc.aio.ServicerContext) -> int:
        for name, value in context.invocation_metadata() or ():
            if name == "authorization":
                scheme, _, token = value.partition(" ")
                if len(token) > MAX_KEY_CHARS:
                    raise BourseError(grpc.StatusCode.UNAUTHENTICATED, "INVALID_API_KEY",
                                      f"API key longer than {MAX_KEY_CHARS} characters")
                account = self._keys.account_of_key(token) if scheme.lower() == "bearer" else None
                if account is None:
                    break
                return account
        else:
            raise BourseError(
                grpc.StatusCode.UNAUTHENTICATED, "MISSING_API_KEY", "missing `authorization: Bearer <api key>` metadata"
            )
        raise BourseError(grpc.StatusCode.UNAUTHENTICATED, "INVALID_API_KEY", "unknown or revoked API key")
