"""What the API and the worker both import: settings, Redis keys, entries, resources."""
