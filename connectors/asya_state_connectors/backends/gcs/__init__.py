"""The GCS backend: ``backend`` (the connectors), ``api`` (client,
configuration, error table), ``read`` (generation-pinned ranged reads),
``upload`` (parallel parts composed under a generation precondition)."""
