"""Web input: WARC records -> pages (warc.py); page HTML -> header segments (segment.py)."""
