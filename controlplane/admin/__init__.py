"""The admin gRPC API: reads the model, the cache and the stream registry; mutates nothing."""
