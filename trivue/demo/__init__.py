"""``trivue demo``: broker, server and simulated trucks on Rennes streets, in one process."""
