"""The HTTP API: create, inspect and control runs; read mirrored employees. aiohttp.web.

`api.app.create_app` builds the application; `api.app.serve` runs it (`employee-sync api`).
The API never calls Coresignal: it only talks to Redis and MongoDB through `worker.runtime.Services`.
"""
