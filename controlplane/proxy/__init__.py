"""The proxy contract: which roles a proxy may take (node metadata) and the bootstraps that set them."""
