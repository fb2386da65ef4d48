"""A demo gRPC service shaped like gRPC's route guide; every reply names the task that served it."""
