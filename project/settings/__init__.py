"""Settings: ``base`` (read from the environment), ``development``, ``production``, ``test``."""
