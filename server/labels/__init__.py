"""Labelling field photos: annotators' decisions on the model's boxes, dataset export and import."""
