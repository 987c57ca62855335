"""What the object-store backends (``s3``, ``gcs``) share.

``answers``: conditions and ranged answers worded once for both; ``prefetch``:
the read window that fans a sequential read out over ranged GETs;
``transfer``: part buffers and the bounded concurrent part upload.

Must not: import either store's client library.
"""
