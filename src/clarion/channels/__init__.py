"""One adapter per provider: network I/O only, each returning a classified :class:`~.base.DeliveryResult`."""
