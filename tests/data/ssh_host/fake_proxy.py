"""The proxy "container" for the docker shim: forwards GET requests from the public
port to the active slot, like `caddy reverse-proxy` in proxy.compose.yml."""
import http.server
import sys
import urllib.error
import urllib.request

listen, upstream = int(sys.argv[1]), int(sys.argv[2])


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{upstream}{self.path}", timeout=5) as r:
                status, body = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read()
        except OSError:
            status, body = 502, b"bad gateway\n"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", listen), Handler).serve_forever()
