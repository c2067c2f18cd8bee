"""Serve the side-by-side app: ``python serve.py PORT`` (0: any free port).

Single process, single thread (wsgiref). Prints ``READY http://127.0.0.1:PORT``
on stdout once listening (with the real port when PORT is 0); request logs are
dropped, errors go to stderr. Keys: SECRET_KEY, SECRET_KEY_FALLBACKS (see
settings.py). Stops on SIGTERM/SIGINT or when killed.
"""

import os
import sys
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
os.environ["DJANGO_SETTINGS_MODULE"] = "settings"


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        pass


def main():
    if len(sys.argv) != 2:
        print("usage: serve.py PORT", file=sys.stderr)
        sys.exit(2)
    port = int(sys.argv[1])
    from django.core.wsgi import get_wsgi_application

    app = get_wsgi_application()
    with make_server("127.0.0.1", port, app, server_class=WSGIServer, handler_class=QuietHandler) as httpd:
        print("READY http://127.0.0.1:%d" % httpd.server_port, flush=True)
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
