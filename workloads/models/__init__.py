"""Network definitions in plain torch, written the way torchvision writes them (no torchvision import).

Only layers the bitbranch compiler lowers are used: Conv2d, BatchNorm2d, ReLU, MaxPool2d,
AvgPool2d, AdaptiveAvgPool2d, flatten, Linear, residual +, torch.cat on channels and nearest Upsample.
Each model's forward ends where the accelerator's work ends; box decoding, NMS, softmax and argmax
run on the host (`workloads.post`).
"""
