"""REST, SSE and WebSocket routers of the realtime process; thin: validate, call, shape."""
