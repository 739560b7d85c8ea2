"""Looking inside a model: shapes layer by layer, a torchinfo-compatible summary with receptive
fields, MACs and training memory, and the cost arithmetic of convolutions.

- ``shapes``: ``trace_shapes``, ``minimum_input_size``, ``build_for_input``
- ``summary``: ``summary`` and ``ModelSummary`` (rendered by ``table``)
- ``cost``: ``conv_cost``
- ``catalog``: the registry with parameter counts
- ``recording``: ``record_forward``, the one instrumented forward pass all of them use, which
  leaves the model as it found it; ``field``: the receptive-field arithmetic

The main names are also at the top level: ``cnnzoo.summary``, ``cnnzoo.trace_shapes``, ...
"""
