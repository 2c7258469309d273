"""vccv_gpu: video captioning straight from compressed H.264 (VCCV), on the GPU.

Subpackages: `codec` (H.264 stream parser and front end), `kernels` (GPU kernels),
`testing` (generated test clips).
"""

__version__ = "0.1.0"
