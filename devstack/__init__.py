"""devstack: the local stand-ins for production services, for the demo, the benchmarks and the tests.

`processes` starts and stops child processes (Redis when none answers, the Mongo-wire server, the
simulator, workers, the HTTP API) on loopback ports, each dying with its parent; `mongo_wire` is the
MongoDB wire-protocol server (mongoeco) used where no `mongod` exists. Nothing in production imports
this package; it may import only the standard library (and mongoeco, in `mongo_wire`).
"""
