"""Triton kernels of vccv_gpu, each tested against a plain-PyTorch reference, and the backend
setting that chooses between them (`backend.py`).

- `residual/`: the codec's kernels, H.264 residual reconstruction (inverse transforms of a frame's
  coefficient blocks) for the GPU front end; `reconstruct_residual` dispatches between
  `residual/triton.py` and its reference beside it, `residual/reference.py`.
- `sam.py`, `tgm.py`: the model's kernels, the fused spatial attention (Eq. 8-10) and temporal gate
  (Eq. 11-12) modules, forward and backward. Their references are the paper's equations where the
  model holds them, `vccv_gpu.model.sam` and `vccv_gpu.model.tgm`, which also dispatch to them.

Modules that use Triton are imported only when the triton backend is first used, so that
TRITON_INTERPRET=1 set after `import vccv_gpu.kernels` still takes effect and the references run
without Triton installed.
"""

from .backend import BACKENDS, ENV_VAR, resolve_backend
from .residual import reconstruct_residual

__all__ = ["BACKENDS", "ENV_VAR", "reconstruct_residual", "resolve_backend"]
