"""What edge and training share: wire schema, detector, tracking, sorting rules, lift assembly.

Deliberately empty but for the offline environment (``base.offline``, only ``os``): it must be
set before ``vision.model`` loads onnxruntime, and ``import vision.schema`` must not drag numpy
or onnxruntime in.
"""

from base.offline import keep_libraries_offline

keep_libraries_offline()
