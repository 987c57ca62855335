"""The Redis backend: ``backend`` (the connector), ``scripts`` (the atomic Lua
scripts and the key layout), ``index`` (the per-mount name index),
``link`` (connections and script loading), ``resp`` (the RESP connection),
``cluster`` (Redis Cluster: slots, redirects, failover), ``move`` (copying a
mount between standalone Redis and a cluster)."""
