"""Graph rewrites that keep the golden integers but map better onto the array.

`im2col_input`: a first convolution on a few input channels (an RGB image: 3 of 64 bits of a word)
wastes most of every word. The host already prepares the input, so it can lay it out as the
convolution's patches: each output pixel gets the kh·kw·Cin input levels of its window (level 0 where
the window leaves the image, exactly the convolution's zero padding). The convolution becomes 1x1 with
kh·kw·Cin channels, and every output integer is unchanged.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from . import ir

MAX_IM2COL_CHANNELS = 512  # keep the patch tensor (and its DRAM traffic) bounded


def patches(u: np.ndarray, kh: int, kw: int, stride: int, pad: int, dil: int) -> np.ndarray:
    """(Ho, Wo, kh*kw*C) patch tensor, channel (ky*kw + kx)*C + c; outside the image = level 0."""
    h, w, c = u.shape
    padded = np.zeros((h + 2 * pad, w + 2 * pad, c), dtype=u.dtype)
    padded[pad : pad + h, pad : pad + w] = u
    ho = (h + 2 * pad - (kh - 1) * dil - 1) // stride + 1
    wo = (w + 2 * pad - (kw - 1) * dil - 1) // stride + 1
    # a read-only (Ho, Wo, kh, kw, C) view of the padded image, copied once by the reshape (8x faster on
    # ResNet's 7x7 stem than concatenating kh*kw strided slices; this runs per frame on the host)
    s0, s1, s2 = padded.strides
    strides = (s0 * stride, s1 * stride, s0 * dil, s1 * dil, s2)
    view = np.lib.stride_tricks.as_strided(padded, (ho, wo, kh, kw, c), strides, writeable=False)
    return view.reshape(ho, wo, kh * kw * c)


def im2col_input(graph: ir.Graph, inputs: dict[str, np.ndarray], word_bits: int) -> tuple[ir.Graph, dict, dict]:
    """Rewrite first convolutions that read a graph input with fewer channels than half a word.

    Returns the new graph, its inputs, and a description of the input transform for the manifest.
    """
    ops, tensors, new_inputs, transforms = list(graph.ops), dict(graph.tensors), dict(inputs), {}
    for name in graph.inputs:
        readers = graph.consumers(name)
        x = graph.tensors[name]
        if len(readers) != 1 or not isinstance(readers[0], ir.Conv) or x.shape[2] * 2 > word_bits \
                or readers[0].groups != 1 or readers[0].pad_w is not None:  # (patches of a grouped conv would need
            continue  # a block-diagonal 1x1; the host's patch transform pads rows and columns alike)
        op = readers[0]
        cout, cin, kh, kw = op.weights.shape
        oh, ow, _ = graph.tensors[op.output].shape
        # a Linear on the flattened input (one output pixel: the patch tensor IS the input, reordered) is always
        # rewritten: its kernel covers the whole image and may not fit the 4-bit kh/kw fields (a 28x28 MNIST MLP)
        whole_input = oh * ow == 1
        if (kh * kw * cin > MAX_IM2COL_CHANNELS and not whole_input) or (kh, kw) == (1, 1):
            continue
        cols = patches(np.asarray(inputs[name]), kh, kw, op.stride, op.pad, op.dil)
        col = ir.Tensor(f"{name}.im2col", cols.shape, x.bits, x.scale, x.zero)
        weights = op.weights.transpose(0, 2, 3, 1).reshape(cout, kh * kw * cin, 1, 1)
        ops[ops.index(op)] = dataclasses.replace(op, inputs=[col.name, *op.inputs[1:]], weights=weights, stride=1,
                                                 pad=0, dil=1)
        tensors[col.name] = col
        new_inputs[col.name] = cols
        del new_inputs[name]
        transforms[col.name] = {"from": name, "transform": "im2col", "kernel": [kh, kw], "stride": op.stride,
                                "pad": op.pad, "dil": op.dil, "channel_order": "(ky*kw + kx)*C + c"}
    graph_inputs = [next((t for t, d in transforms.items() if d["from"] == n), n) for n in graph.inputs]
    if transforms:
        del_names = {d["from"] for d in transforms.values()}
        tensors = {k: v for k, v in tensors.items() if k not in del_names}
    return ir.Graph(tensors, ops, graph_inputs, list(graph.outputs), dict(graph.meta)), new_inputs, transforms
