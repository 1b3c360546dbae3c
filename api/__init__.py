"""The HTTP API: serves combined views from Redis only; ``python -m api`` starts it."""
