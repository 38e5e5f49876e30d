"""Open data: street-level statistics as a Frictionless data package (CSV, GeoJSON), API and CLI."""
