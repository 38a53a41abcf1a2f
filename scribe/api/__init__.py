"""The web layer: FastAPI app and routers. Thin: routes call the same domain functions as the CLI."""
