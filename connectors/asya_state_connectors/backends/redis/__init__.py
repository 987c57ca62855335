"""The Redis backend: ``backend`` (the connector), ``scripts`` (the atomic Lua
scripts and the key layout), ``index`` (the per-mount name index),
``link`` (connections and script loading), ``resp`` (the RESP connection)."""
