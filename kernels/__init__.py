"""GPU kernels of vccv_gpu (installed as `vccv_gpu.kernels`).

Each fused kernel lives beside its plain-PyTorch reference and is tested against it; the
SAM pooling, TGM gate fusion and residual reconstruction kernels land with their issues.
"""
