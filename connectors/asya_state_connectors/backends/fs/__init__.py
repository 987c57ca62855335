"""The local-directory backend: ``backend`` (the connectors: keys, prefixes,
conditions) and ``primitives`` (errno table, directory locks, temporary files,
extended attributes)."""
