"""An app "container" for the docker shim: serves its image name; /healthz fails for a
"bad" image."""
import http.server
import sys

port, image = int(sys.argv[1]), sys.argv[2]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        healthy = "bad" not in image.rsplit(":", 1)[-1]
        status = 500 if self.path == "/healthz" and not healthy else 200
        body = f"release {image}\n".encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
