"""The asya-state Crossplane composition function.

Owns: turning ``spec.stateProxy[]`` of an ``AsyncActor`` into connector
sidecars, volumes and runtime env on the actor's Deployment. ``fn`` is the
gRPC entry point; ``models``, ``validation``, ``catalog``, ``builders`` and
``conditions`` are the pure pieces it orchestrates.

Must not: do I/O beyond the request and the response, or import the
connector or runtime packages (the function image ships neither).
"""
