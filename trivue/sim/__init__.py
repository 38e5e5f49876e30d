"""``trivue simulate``: a fleet of trucks on real streets, with faults on demand and a saved ground truth."""
