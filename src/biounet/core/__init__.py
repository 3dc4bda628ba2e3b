"""What every layer uses and nothing else depends on: input checks, safe file writing, devices.

``checks`` (option look-up, integers, sizes, label images, spacing, probabilities), ``files``
(atomic writes, output folders), ``device`` (``"auto"`` and unavailable devices), ``lazy``
(names a package imports on first use), ``runtime`` (CPU allocator tuning). Nothing here
imports another part of biounet.
"""
