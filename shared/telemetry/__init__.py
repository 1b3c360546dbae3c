"""JSON logs and Prometheus metrics."""
