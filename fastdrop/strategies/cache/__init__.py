"""The feature cache of a dropped tail (`feature`) and where its tensors live (`backends`: device, host,
disk, registered in fallback order in fastdrop.registry.CACHE_BACKENDS: when one has no room the next is
tried)."""
from .backends import CacheBackend, CacheDamaged, CacheError, DiskBackend, HostBackend
from .feature import DTYPES, FeatureCache, choose_backend

__all__ = ["FeatureCache", "CacheBackend", "CacheError", "CacheDamaged", "DTYPES", "DiskBackend", "HostBackend",
           "choose_backend"]
