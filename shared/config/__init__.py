"""Where settings come from: declarations, config.ini, Consul KV, the environment."""
