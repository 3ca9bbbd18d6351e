"""Bulk import of contacts and events from files: reading, mapping columns, staging and set-based writing."""
