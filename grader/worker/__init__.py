"""The worker side: the only process that runs student code (its client, the wire, confinement, rebuilding)."""
