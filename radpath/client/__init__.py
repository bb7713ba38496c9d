"""RadPath client: the gRPC client of the serving stack and the `radpath` command line."""
