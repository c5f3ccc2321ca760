"""Business logic: recording transactions, performing hops, running a transaction end to end."""
