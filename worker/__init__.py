"""worker: the fleet's machinery, with each third-party library confined to one module.

- `run_model` — the run: kinds, states, the one transition table, outcomes, typed sub-records
- `store/` — MongoDB (the only package importing pymongo): mirror sink, run records, dead-letter
- `client` — the Coresignal API client (the only module importing aiohttp's client)
- `limiter` + `gcra.lua` — the global rate limiter on Redis `TIME`
- `queue` — the only module importing arq; `redis_errors` — the one Redis error boundary
- `progress`, `waiters`, `credits`, `stash` — run counters, cross-run item sharing, the 402 gate,
  profiles paid for but not yet written (all Redis)
- `errors`, `keys`, `retry` — the exception tree, every Redis key/queue/job name, the retry policy
- `runtime` — long-lived clients made at start-up and handed to jobs in arq's ctx
- `metrics`, `metrics_server` — Prometheus families, and the scrape/serving side

May import `config` and third-party libraries; never `jobs`, `api`, `cli` or `simulator`.
"""
