"""`python -m bench rate ...` (see bench/rate.py)."""

from __future__ import annotations

import sys

from bench import bulk, chaos, dashboard, enqueue, freshness, peers, rate, soak, webhooks

BENCHMARKS = {
    "rate": rate.main,
    "enqueue": enqueue.main,
    "chaos": chaos.main,
    "peers": peers.main,
    "soak": soak.main,
    "dashboard": dashboard.main,
    "webhooks": webhooks.main,
    "bulk": bulk.main,
    "freshness": freshness.main,
}

if __name__ == "__main__":
    name = sys.argv[1] if len(sys.argv) > 1 else ""
    if name not in BENCHMARKS:
        print(f"usage: python -m bench {{{'|'.join(BENCHMARKS)}}} [options]", file=sys.stderr)
        sys.exit(2)
    sys.exit(BENCHMARKS[name](sys.argv[2:]))
