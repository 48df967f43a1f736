"""Glue for third-party task queues, imported only by projects that use them."""
