"""A toy cache backend: host memory, counting the rows it fetched."""
from fastdrop.strategies.cache.backends import CACHE_BACKENDS, HostBackend


@CACHE_BACKENDS.register()
class ToyBackend(HostBackend):
    name = "toy_backend"
    fetched = 0

    def fetch(self, g):
        type(self).fetched += len(g)
        return super().fetch(g)
