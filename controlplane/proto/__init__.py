"""Generated Python modules of the project's own .proto files."""
