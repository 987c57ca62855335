"""The asya-state Crossplane composition function.

Owns: turning ``spec.stateProxy`` of an ``AsyncActor`` (a list of mounts, or
the one-mount shorthand) into connector sidecars, volumes and runtime env on
the actor's Deployment, composed by the function or by an earlier step (as
is, or wrapped in a provider-kubernetes Object). ``fn`` is the gRPC entry
point; ``models``, ``validation``, ``shorthand``, ``identity``,
``catalog``, ``workload``, ``sidecars``, ``builders``, ``readiness``,
``conditions`` and ``sdk`` are the pure pieces it orchestrates.

Must not: do I/O beyond the request and the response, or import the
connector or runtime packages (the function image ships neither).
"""
