"""Signed links (unsubscribe, preferences) and what recipients do with them."""
