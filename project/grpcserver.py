"""gRPC entry point: ``python -m project.grpcserver [--address HOST:PORT]`` serves hop 5.

What ``wsgi.py`` is to the web server: it defaults to production settings, which refuse to
start without their secrets or with an error of the system checks; development settings are
chosen explicitly.
"""

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings.production")
    import django

    django.setup()
    from django.conf import settings

    from relay_app import tracing
    from relay_app.checks import check_at_start
    from relay_app.grpc_server import serve

    parser = argparse.ArgumentParser(prog="python -m project.grpcserver", description=__doc__)
    parser.add_argument(
        "--address",
        default=settings.GRPC_ADDRESS.split(",")[0],
        help="host:port (default: the first of GRPC_ADDRESS)",
    )
    args = parser.parse_args(argv)
    check_at_start("grpc")
    tracing.setup("grpc")
    try:
        serve(args.address)
    except OSError as exc:
        print(f"grpcserver: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
