"""``make chaos`` and ``make chaos-cluster``: kill, restart and starve each service under load,
and check nothing is lost.

Each scenario runs a steady, bounded load of ``POST /api/relay/`` from client threads (the
shared ``ops.ledger``), injects one fault, removes it, keeps the load on a little longer,
then checks the ledger of every request against the database and Kafka (``report.py``):

- every transaction ends in exactly one final state within the deadline plus a grace;
- every 200 carried the exact text for its own message;
- no hop row is duplicated, and no transaction has two records on a topic;
- every Kafka record acknowledged (recorded with its coordinates) is still readable;
- during the fault clients got 503/504 promptly, never a hang past the deadline;
- after it, new requests succeed with nothing else restarted.

``python -m ops.chaos [--quick]`` runs the scenarios of ``scenarios.py`` on a stack of its own
(``var/chaos/``); ``--cluster`` those of ``cluster.py`` on the cluster profile
(``var/chaos-cluster/``). Both end with one JSON line of the same fields (``report.py``).
"""
