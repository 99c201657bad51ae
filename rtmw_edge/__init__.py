"""rtmw-edge: RTMW whole-body pose estimation on edge devices, fast, small and as accurate as the float model."""

__version__ = "0.1.0"
