"""What is fetched: resource kinds, one module per upstream, the registry."""
