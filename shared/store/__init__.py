"""Redis: the key scheme, cache entries, flights, the refresh schedule, liveness."""
