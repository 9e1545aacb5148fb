"""The timing report: per-stage latencies from trace files, their statistics, and how they are shown."""
