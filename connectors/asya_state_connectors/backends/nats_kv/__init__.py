"""The NATS JetStream KV backend: ``backend`` (the connector),
``key_encoding`` (file keys to KV keys and subject filters), ``messages``
(headers, entries and the NATS error table)."""
