"""Queueing a search run's page jobs (shared by the search job itself and run control)."""

from __future__ import annotations

from worker import keys
from worker.queue import JobSpec
from worker.runtime import Services

# While the run has more than search_max_queued ids found but not finished, a page job looks again
# after this long: the search runs ahead of the collect jobs by a bounded amount.
BACKPRESSURE_DEFER_S = 2.0


async def enqueue_page(services: Services, run_id: str, page_no: int, *, wait_no: int = 0) -> bool:
    """Queue the job for page `page_no` (ahead of collect jobs), or its deferred re-check `wait_no`.

    Either way a page is stored once: the page's chunk is first-writer-wins and the run advances
    with a compare-and-set on its next page, so two chains for one page cannot both count it.
    """
    job_id = keys.search_page_job_id(run_id, page_no) + (f":w{wait_no}" if wait_no else "")
    spec = JobSpec(job_id, (run_id, page_no, wait_no))
    if wait_no:
        added = await services.queue.enqueue_many(
            keys.JOB_QUEUE, keys.SEARCH_PAGE_JOB, [spec], defer_s=BACKPRESSURE_DEFER_S
        )
    else:
        added = await services.queue.enqueue_many(keys.JOB_QUEUE, keys.SEARCH_PAGE_JOB, [spec], priority=True)
    return added[0]
