"""Container healthcheck: exit 0 when the URL answers 2xx within the timeout, else 1.

    healthcheck.py URL [SECRET_ENV]

With SECRET_ENV, the value of that environment variable is sent as X-Berth-Cluster-Secret (the
agent authenticates every route, /healthz included). The base image has no curl or wget; this
needs only the standard library.
"""

import os
import sys
import urllib.error
import urllib.request

CLUSTER_AUTH_HEADER = "X-Berth-Cluster-Secret"


def main() -> int:
    url = sys.argv[1]
    request = urllib.request.Request(url)
    if len(sys.argv) > 2:
        request.add_header(CLUSTER_AUTH_HEADER, os.environ.get(sys.argv[2], ""))
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            return 0 if 200 <= response.status < 300 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
