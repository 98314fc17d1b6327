"""Host-side post-processing: the work after the accelerator's last layer, in plain torch.

Every function here is pure (tensors in, tensors out) so it can be tested on hand-made tensors and
timed on the host by the report. The input is what the model's `forward` returns, in float.
"""
