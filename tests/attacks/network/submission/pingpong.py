import socket

PORTS = [int("{listener_port}")]  # filled in by the test: a listener on the host's loopback


def _connect():
    results = []
    for host in ("127.0.0.1", "localhost"):
        for port in (8000, 8080, *PORTS):
            try:
                with socket.create_connection((host, port), timeout=0.5) as s:
                    s.sendall(b"hello from a submission")
                    results.append(f"connected {host}:{port}")
            except OSError as exc:
                results.append(f"{host}:{port} {type(exc).__name__}")
    return results


def ping_pong(rounds):
    raise RuntimeError("; ".join(_connect()))


def ring(n, tokens):
    _connect()
    return None
