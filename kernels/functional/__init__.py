"""The public functional API, one module per op: ``kernels.conv2d``, ``kernels.conv_transpose2d`` and the 2-D
pooling functions, drop-ins for their ``torch.nn.functional`` namesakes (``kernels/__init__.py`` exports
them)."""
