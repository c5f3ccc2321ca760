"""The secure profile of the local stack (``make up-secure``, profiles.SECURE): production
settings, with TLS and credentials on every hop and no plaintext port but Zipkin's own,
on loopback behind the proxy.

No DEBUG, no development superuser, no anonymous relaying, no gRPC reflection. Kafka listens
on SASL_SSL only (SCRAM-SHA-512, with ACLs), Redis on TLS only (an ACL user per role), the gRPC
server takes the workers' certificate alone, and nginx in front of the web servers, Flower
and Zipkin serves HTTPS (spans only from the relay's processes' certificates).
``python -m ops.tls var/secure/tls`` makes a certificate per service and the secrets;
the stack hands each process its own (docs/security.md). Data, logs and pids in ``var/secure/``.
"""

import os

from .environment import use_profile
from .profiles import SECURE, with_local_tls

use_profile(with_local_tls(SECURE, os.environ))

from .production import *  # noqa: E402,F403

RELAY_PROFILE = "secure"
