"""Shared helpers with no models: request context, CSV, pagination."""
