"""Long-running work: the segment scheduler (and, later, campaign and journey runners)."""
