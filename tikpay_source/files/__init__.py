"""Report files: fetched, checked whole, and read (CSV, and XML turned into CSV)."""
