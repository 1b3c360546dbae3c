"""The caching decisions as pure functions: what to serve, when to refresh, HTTP caching rules."""
