"""MongoDB: the employee mirror, run records and the dead-letter. The only package importing pymongo."""

from worker.store.employees import SinkOutcome, content_hash
from worker.store.mongo import MongoStore

__all__ = ["MongoStore", "SinkOutcome", "content_hash"]
