"""Planning a run: the local-time window grid, the connector's state, and the request budget."""
