"""The HTTP interface: DRF views over the relay's services and selectors."""
