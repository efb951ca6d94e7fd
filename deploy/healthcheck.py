"""Container healthcheck: exit 0 when the URL answers 2xx within the timeout, else 1.

The base image has no curl or wget; this needs only the standard library.
"""

import sys
import urllib.error
import urllib.request


def main() -> int:
    url = sys.argv[1]
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return 0 if 200 <= response.status < 300 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
