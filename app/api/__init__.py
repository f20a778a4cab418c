"""The HTTP face of the service: routers, request and response schemas, error handlers."""
