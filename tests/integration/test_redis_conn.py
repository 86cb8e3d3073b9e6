"""The Redis clients reconnect by themselves after a Redis restart: no failed command."""

from __future__ import annotations

import asyncio

from jobengine.redis_conn import EmbeddedRedis, async_client, sync_client
from jobengine.settings import Settings


def test_clients_survive_a_redis_restart(tmp_path):
    server = EmbeddedRedis(directory=str(tmp_path)).start()
    try:
        settings = Settings(redis_url=server.url)
        sync = sync_client(settings)
        sync.set("k", "v")

        async def use_async() -> list[bytes | None]:
            client = async_client(settings)
            await client.get("k")
            server.restart()  # graceful: AOF keeps the key
            got = [await client.get("k") for _ in range(2)]
            await client.aclose()
            return got

        assert asyncio.run(use_async()) == [b"v", b"v"]
        server.restart()
        assert sync.get("k") == b"v"
        sync.close()
    finally:
        server.stop()
