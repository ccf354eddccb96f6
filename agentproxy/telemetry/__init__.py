"""Opt-in OpenTelemetry (AGENTPROXY_ENABLE_TELEMETRY=1): one trace per task, the seed's metrics.

Off, nothing here imports opentelemetry.
"""
