"""Cache: versioned snapshots per proxy role, each resource serialized once and shared."""
