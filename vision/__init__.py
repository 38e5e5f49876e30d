"""What edge and training share: wire schema, detector, tracking, sorting rules, lift assembly.

Deliberately empty: ``import vision.schema`` must not drag numpy or onnxruntime in.
"""
