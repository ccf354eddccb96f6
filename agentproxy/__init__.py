"""agentproxy: a supervisor that runs coding agents unattended, in parallel, safely and observably."""

__version__ = "0.1.0"
