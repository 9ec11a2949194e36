"""cli: the `employee-sync` command, the composition root (it wires settings, logging, services and
job functions together), the live progress view and the demo.

May import everything in the project; only tests import it (the burst-mode worker fixture is
`cli.wiring.run_fleet_worker`; the CLI itself is driven as a subprocess).
"""
