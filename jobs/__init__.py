"""jobs: what the fleet does, as plain async functions over `worker.runtime.Services`.

- `inputs`, `search_input` — parsing producer input (line numbers in every rejection)
- `producers` — input → a run with its inputs stored in MongoDB (ids, names, search)
- `feeder` — stored inputs → a bounded window of collect jobs, fair across runs
- `collect`, `search`, `search_chain` — the collect job and the search page chain
- `runs` — outcomes, finishing, status and ETA; `control` — pause, resume, cancel, recover
- `deadletter` — permanent failures and putting them back to work

May import `worker` and `config`; never `api`, `cli` or `simulator`.
"""
