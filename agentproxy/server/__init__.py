"""pa-server: HTTP endpoints over the Python API (agentproxy.api), with a live dashboard at /."""
