"""Flask's development server on port 80 (its default host, 127.0.0.1): echoes the peer it sees."""

from __future__ import annotations

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

app = Flask(__name__)


@app.get("/")
def index() -> ResponseReturnValue:
    print(f"request from {request.remote_addr}:{request.environ.get('REMOTE_PORT')}", flush=True)
    return jsonify(
        peer=[request.remote_addr, int(request.environ["REMOTE_PORT"])],
        server=[request.environ["SERVER_NAME"], int(request.environ["SERVER_PORT"])],
    )


if __name__ == "__main__":
    app.run(port=80, debug=False)
