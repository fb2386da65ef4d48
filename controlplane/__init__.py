"""An xDS control plane that turns AWS ECS tasks and their Docker labels into Envoy configuration."""

__version__ = "0.1.0"
