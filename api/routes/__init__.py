"""One module per resource; each exports ``ROUTES`` (handlers) for ``api.app``."""
