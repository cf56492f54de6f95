"""The metrics service: the monitoring figures per workflow and step, in Redis."""
