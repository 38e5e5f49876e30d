"""The HTTP side: JSON API, dashboard pages, login and roles, reports, drill-down, CSV."""
