"""The inference server's protocol handlers, one module per protocol: each parses a request,
asks ``Inference`` for the answer and encodes it (``app.py`` holds the route table)."""
