"""Typing report columns: their names, the lossless typing rules, each table's column types, widening."""
