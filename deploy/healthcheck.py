"""Container readiness check: exit 0 only when scribe's /healthz says the service is ready.

`/healthz` answers 200 as soon as the process serves, with `"ready": false` until the speech
recognition engine has loaded (and for good if it failed to load). A node that is not ready must not
receive streams, so this check reads the body, not only the status. Standard library only: it runs
inside the image as the Docker HEALTHCHECK and the Kubernetes readiness probe.

    python healthcheck.py [URL]        (default http://127.0.0.1:8000/healthz)
"""

import json
import sys
import urllib.request

URL = "http://127.0.0.1:8000/healthz"


def main(argv: list[str]) -> int:
    url = argv[1] if len(argv) > 1 else URL
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            health = json.load(response)
    except (OSError, ValueError) as exc:  # refused, timed out, an HTTP error status, or not JSON
        print(f"not healthy: {exc}", file=sys.stderr)
        return 1
    if health.get("status") != "ok" or health.get("ready") is not True:
        print(f"not ready: {health}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
