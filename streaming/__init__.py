"""Real-time layer: websocket protocol, streaming sessions, clients (see streaming/PROTOCOL.md)."""
