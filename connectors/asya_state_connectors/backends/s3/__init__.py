"""The S3 backend: ``backend`` (the connectors), ``api`` (client, configuration,
error table), ``read`` (pinned ranged reads), ``multipart`` (part uploads with
the condition on the final step)."""
