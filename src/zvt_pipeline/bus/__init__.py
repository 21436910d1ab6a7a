"""Redis Streams transport between steps: publish, consume in groups, claim stale entries, dead letters."""
