"""`python -m jobengine_api.apikey_cli`: create API keys, hash one, revoke or restore one without a restart.

  create --tenant acme --scopes submit,read [--id ID] [--hash sha256|pbkdf2_sha256]
      prints the key once (give it to the client) and the entry for the key file (JSON)
  hash KEY            prints the key file entry's secret_hash of an existing `<id>.<secret>` key
  revoke ID / unrevoke ID / revoked
      edit or show the Redis set every API process refuses (JOBENGINE_REDIS_URL), in force within
      JOBENGINE_AUTH_REFRESH_SECONDS
"""

from __future__ import annotations

import argparse
import json
import sys

from jobengine import keys

from .apikey import KEY_ID_PATTERN, SCOPES, TENANT_PATTERN, hash_secret, new_key_id, new_secret, split_key


def _scopes(text: str) -> list[str]:
    scopes = [s.strip() for s in text.split(",") if s.strip()]
    unknown = sorted(set(scopes) - set(SCOPES))
    if not scopes or unknown:
        raise argparse.ArgumentTypeError(f"comma-separated scopes among {', '.join(SCOPES)}")
    return sorted(set(scopes), key=SCOPES.index)


def _pattern(regex):  # type: ignore[no-untyped-def]
    def check(text: str) -> str:
        if not regex.match(text):
            raise argparse.ArgumentTypeError(f"must match {regex.pattern}")
        return text
    return check


def _redis():  # type: ignore[no-untyped-def]
    from jobengine.redis_conn import sync_client
    from jobengine.settings import load_settings

    return sync_client(load_settings())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobengine_api.apikey_cli", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="a new key: printed once, with its key file entry")
    create.add_argument("--tenant", required=True, type=_pattern(TENANT_PATTERN))
    create.add_argument("--scopes", required=True, type=_scopes, help=f"comma-separated: {', '.join(SCOPES)}")
    create.add_argument("--id", type=_pattern(KEY_ID_PATTERN), help="key id (default: random)")
    create.add_argument("--hash", choices=("sha256", "pbkdf2_sha256"), default="sha256")
    create.add_argument("--json", action="store_true", help="print one JSON object {key, entry}")
    hash_cmd = sub.add_parser("hash", help="the secret_hash of an existing key")
    hash_cmd.add_argument("key")
    hash_cmd.add_argument("--hash", choices=("sha256", "pbkdf2_sha256"), default="sha256")
    for name in ("revoke", "unrevoke"):
        cmd = sub.add_parser(name, help=f"{name} a key id in Redis (all API processes)")
        cmd.add_argument("id", type=_pattern(KEY_ID_PATTERN))
    sub.add_parser("revoked", help="list the key ids revoked in Redis")
    args = parser.parse_args(argv)

    if args.command == "create":
        key_id, secret = args.id or new_key_id(), new_secret()
        entry = {"id": key_id, "tenant": args.tenant, "scopes": args.scopes,
                 "secret_hash": hash_secret(secret, args.hash), "revoked": False}
        key = f"{key_id}.{secret}"
        if args.json:
            print(json.dumps({"key": key, "entry": entry}))
        else:
            print(f"API key (shown once; give it to the client):\n  {key}\n")
            print(f"Key file entry (add it to the JSON list of JOBENGINE_API_KEYS_FILE):\n  {json.dumps(entry)}")
        return 0
    if args.command == "hash":
        parts = split_key(args.key)
        if parts is None:
            parser.error("a key looks like <key_id>.<secret>")
        print(hash_secret(parts[1], args.hash))
        return 0
    client = _redis()
    if args.command == "revoke":
        client.sadd(keys.APIKEY_REVOKED, args.id)
        print(f"revoked {args.id}")
    elif args.command == "unrevoke":
        client.srem(keys.APIKEY_REVOKED, args.id)
        print(f"restored {args.id}")
    else:
        for member in sorted(client.smembers(keys.APIKEY_REVOKED)):
            print(member.decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
