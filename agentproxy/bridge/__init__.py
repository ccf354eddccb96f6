"""The ZeroMQ bridge: a broker in the supervisor, workers on other machines (docs/bridge.md)."""
