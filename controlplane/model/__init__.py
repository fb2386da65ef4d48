"""The model: labels and tasks parsed into a typed, validated, immutable mesh. Pure."""
