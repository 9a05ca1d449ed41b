"""fastdrop: reference implementation of Learn&Drop (fast CNN training by layer dropping)."""
__version__ = "0.1.0"
