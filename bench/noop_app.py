"""The baseline of the API benchmark: a no-op FastAPI POST endpoint answering 202 with a small JSON,
served exactly as the API is (uvicorn, uvloop, httptools, 1 process, no access log).

    BENCH_NOOP_PORT=8001 python -m bench.noop_app
"""

from __future__ import annotations

import os

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()


@app.post("/v1/jobs", status_code=202)
async def submit(request: Request) -> JSONResponse:
    await request.body()  # the body is received either way
    return JSONResponse({"id": "00000000-0000-0000-0000-000000000000", "status": "queued"}, status_code=202)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["BENCH_NOOP_PORT"]), loop="uvloop", http="httptools",
                access_log=False, log_config=None, server_header=False)
