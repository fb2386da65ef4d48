"""Certificates the edge serves over SDS: read from PEM files or AWS Secrets Manager, refreshed while running.

Sits beside discovery (it reads outside sources, the way discovery reads ECS); translate turns what it
holds into SDS Secret resources.
"""
