"""Streets, segments and addresses: OSM and address-file imports, the spatial locator, the CLI."""
