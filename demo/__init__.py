"""A Calendar42-compatible demo upstream with fault and latency injection."""
