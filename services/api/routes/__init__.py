"""The api's routes, one module per concern; every router requires a token."""
