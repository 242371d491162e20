"""Triton kernels of the selective scan, installed as ``mamba_export.kernels``.

Import them only under that name: transformers probes for a top-level ``kernels``
package and calls into it.
"""
