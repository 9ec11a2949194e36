"""A local stand-in for Coresignal's Clean Employee API (es_dsl search and collect endpoints,
rate limits, credits, injected faults) plus `/_sim` control endpoints. Imports nothing from the
rest of the project."""

from simulator.app import RunningSimulator, create_app, serve, start
from simulator.config import SimulatorConfig
from simulator.population import Population

__all__ = ["Population", "RunningSimulator", "SimulatorConfig", "create_app", "serve", "start"]
