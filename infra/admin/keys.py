"""API keys, an operator's commands (through the persistence service; keys live hashed
in database 0 and every order-service replica refreshes its table every second or so).

    python -m infra.admin keys create --account N [--label TEXT]   prints the key, once
    python -m infra.admin keys list [--all]                        live keys (--all: revoked too)
    python -m infra.admin keys revoke KEY_ID                       refused from the next refresh

The key itself is made here and never leaves this command but on its output: only its
SHA-256 is sent and stored.
"""

from __future__ import annotations

import argparse
import sys
from datetime import timezone

import grpc
from bourse.persistence.v1 import persistence_service_pb2 as pb
from bourse.persistence.v1 import persistence_service_pb2_grpc as pb_grpc
from rich.console import Console
from rich.table import Table

from services.common.api_keys import key_hash, new_key

_PAGE = 1000


def create(store, account: int, label: str) -> tuple[str, pb.ApiKey]:
    key = new_key()
    created = store.CreateApiKey(pb.CreateApiKeyRequest(key_hash=key_hash(key), account_id=account, label=label),
                                 timeout=10)
    return key, created.key


def listed(store, everything: bool) -> list[pb.ApiKey]:
    """Every key's newest state (a key created and then revoked appears once, revoked)."""
    newest: dict[str, pb.ApiKey] = {}
    after = 0
    while True:
        page = store.ListApiKeys(pb.ListApiKeysRequest(after_revision=after, page_size=_PAGE), timeout=10)
        for key in page.keys:
            newest[key.key_id] = key
            after = key.revision
        if len(page.keys) < _PAGE:
            break
    return [k for k in newest.values() if everything or not k.HasField("revoke_time")]


def _when(ts) -> str:
    return ts.ToDatetime(tzinfo=timezone.utc).strftime("%Y-%m-%d %H:%M:%S") if ts.seconds else ""


def print_keys(keys: list[pb.ApiKey]) -> None:
    table = Table(title="API keys")
    for column in ("key_id", "account", "label", "created (UTC)", "revoked (UTC)"):
        table.add_column(column)
    for key in sorted(keys, key=lambda k: (k.account_id, k.create_time.seconds)):
        table.add_row(key.key_id, str(key.account_id), key.label, _when(key.create_time), _when(key.revoke_time))
    Console(width=None if sys.stdout.isatty() else 200).print(table)


def main(argv: list[str], persistence_of) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.admin keys", description=__doc__.split("\n\n")[0])
    parser.add_argument("--persistence", default="", help="host:port of the persistence service")
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("create", help="make a key for an account and print it once")
    make.add_argument("--account", type=int, required=True)
    make.add_argument("--label", default="", help="what the key is for (at most 200 characters)")
    show = commands.add_parser("list", help="the live keys")
    show.add_argument("--all", action="store_true", help="revoked keys too")
    revoke = commands.add_parser("revoke", help="revoke a key by its key_id")
    revoke.add_argument("key_id")
    args = parser.parse_args(argv)
    with grpc.insecure_channel(persistence_of(args)) as channel:
        store = pb_grpc.PersistenceServiceStub(channel)
        try:
            if args.command == "create":
                key, stored = create(store, args.account, args.label)
                print(f"key_id {stored.key_id} for account {stored.account_id}. The key (shown once, keep it "
                      f"secret):\n{key}")
            elif args.command == "list":
                print_keys(listed(store, args.all))
            else:
                revoked = store.RevokeApiKey(pb.RevokeApiKeyRequest(key_id=args.key_id), timeout=10).key
                print(f"key_id {revoked.key_id} (account {revoked.account_id}) revoked at "
                      f"{_when(revoked.revoke_time)} UTC")
        except grpc.RpcError as error:
            print(f"{args.command} failed: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    return 0
