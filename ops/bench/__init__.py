"""``make bench``: the relay under load over HTTP, against two baselines measured in the same run.

``run.py`` runs it (its levels, in order), ``client.py`` is the load client's process,
``baselines.py`` the two baselines, ``usage.py`` the services' CPU and memory, ``figures.py``
every figure and the headline, ``chart.py`` the chart. Figures go to ``var/bench/results.json``
and ``var/bench/latency.png``; the last line printed is one JSON object with the headline
figures, ``targets_met`` among them.
"""
