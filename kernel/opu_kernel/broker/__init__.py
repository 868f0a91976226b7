"""A shared OPU: one broker process drives the device and serves many kernels in fair turns.

- :mod:`.protocol`: the wire format (ZeroMQ frames, per-user keys and MACs, bit packing).
- :mod:`.scheduler`: who goes next (deficit round robin over frames; pure, clock injected).
- :mod:`.device`: the simulator with a timing model, or the hardware backend.
- :mod:`.server`: the broker (``python -m opu_kernel.broker``, settings in :mod:`.app`).
- :mod:`.client`: a kernel's side; ``OPU(backend="shared")`` uses it
  (:mod:`opu_kernel.backends.shared`).
"""
