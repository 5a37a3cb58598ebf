"""Op families of the importer fuzzer: each a function ``(rng, in_shape) -> Step`` drawing
one op's configuration (attributes, constant operands) for an input of that shape.
Operands other than the graph's input are initializers."""

from __future__ import annotations

import dataclasses

import numpy as np
from onnx import TensorProto


@dataclasses.dataclass
class Step:
    """One op (or a short fixed group) appended to the graph: ``nodes`` read ``"{in}"`` and
    write ``"{out}"`` (placeholders filled in when chained); ``inits`` are numpy arrays by
    name (prefixed per step); ``spec`` describes the configuration for reports."""

    nodes: list
    inits: dict
    spec: dict


def pick(rng, options):
    return options[int(rng.integers(len(options)))]


def _node(op, inputs, outputs=("{out}",), **attrs):
    return (op, list(inputs), list(outputs), attrs)


def _f32(rng, shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _i64(values):
    return np.asarray(values, dtype=np.int64)


def _conv(rng, shape):
    if len(shape) < 3:
        return _elementwise(rng, shape)
    spatial = len(shape) - 2
    c_in = shape[1]
    group = pick(rng, [g for g in (1, 2, 3) if c_in % g == 0])
    c_out = group * int(rng.integers(1, 3))
    k = [int(rng.integers(1, 4)) for _ in range(spatial)]
    attrs = {"kernel_shape": k, "strides": [int(rng.integers(1, 4)) for _ in k],
             "dilations": [int(rng.integers(1, 3)) for _ in k], "group": group}
    auto = pick(rng, ["NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"])
    if auto == "NOTSET":
        attrs["pads"] = [int(rng.integers(0, kk + 1)) for kk in k * 2]
    else:
        attrs["auto_pad"] = auto
    inits = {"w": _f32(rng, (c_out, c_in // group, *k), 0.5)}
    inputs = ["{in}", "w"]
    if rng.random() < 0.5:
        inits["b"] = _f32(rng, (c_out,))
        inputs.append("b")
    return Step([_node("Conv", inputs, **attrs)], inits, {"op": "Conv", **attrs})


def _conv_transpose(rng, shape):
    if len(shape) < 3:
        return _elementwise(rng, shape)
    spatial = len(shape) - 2
    c_in = shape[1]
    group = pick(rng, [g for g in (1, 2) if c_in % g == 0])
    c_out = group * int(rng.integers(1, 3))
    k = [int(rng.integers(1, 4)) for _ in range(spatial)]
    strides = [int(rng.integers(1, 4)) for _ in k]
    dil = [int(rng.integers(1, 3)) for _ in k]
    attrs = {"kernel_shape": k, "strides": strides, "dilations": dil, "group": group}
    if rng.random() < 0.5:
        attrs["output_padding"] = [int(rng.integers(0, max(s, d))) for s, d in zip(strides, dil)]
    auto = pick(rng, ["NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"])
    if auto == "NOTSET":
        attrs["pads"] = [int(rng.integers(0, kk)) for kk in k * 2]
    else:
        attrs["auto_pad"] = auto
    inits = {"w": _f32(rng, (c_in, c_out // group, *k), 0.5)}
    inputs = ["{in}", "w"]
    if rng.random() < 0.5:
        inits["b"] = _f32(rng, (c_out,))
        inputs.append("b")
    return Step([_node("ConvTranspose", inputs, **attrs)], inits,
                {"op": "ConvTranspose", **attrs})


def _pool(rng, shape):
    if len(shape) < 3:
        return _elementwise(rng, shape)
    op = pick(rng, ["MaxPool", "AveragePool"])
    k = [int(rng.integers(1, min(3, s) + 1)) for s in shape[2:]]
    attrs = {"kernel_shape": k, "strides": [int(rng.integers(1, 4)) for _ in k],
             "ceil_mode": int(rng.integers(0, 2))}
    if rng.random() < 0.4:
        attrs["dilations"] = [int(rng.integers(1, 3)) for _ in k]
    auto = pick(rng, ["NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"])
    if auto == "NOTSET":
        attrs["pads"] = [int(rng.integers(0, kk)) for kk in k * 2]
    else:
        attrs["auto_pad"] = auto
    if op == "AveragePool":
        attrs["count_include_pad"] = int(rng.integers(0, 2))
    spec = {"op": op, **attrs}
    if auto.startswith("SAME"):        # total SAME padding (ONNX formula) below 0 on an axis
        dil = attrs.get("dilations", [1] * len(k))
        spec["negative_same_pad"] = any(
            (-(-n // s) - 1) * s + (kk - 1) * d + 1 - n < 0
            for n, s, kk, d in zip(shape[2:], attrs["strides"], k, dil))
    return Step([_node(op, ["{in}"], **attrs)], {}, spec)


def _resize(rng, shape):
    if len(shape) < 3:
        return _elementwise(rng, shape)
    mode = pick(rng, ["nearest", "nearest", "linear", "cubic"])
    ctm = pick(rng, ["half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel",
                      "half_pixel_symmetric"])
    attrs = {"mode": mode, "coordinate_transformation_mode": ctm}
    if mode == "nearest":
        attrs["nearest_mode"] = pick(rng, ["round_prefer_floor", "round_prefer_ceil",
                                            "floor", "ceil"])
    if mode == "cubic" and rng.random() < 0.5:
        attrs["exclude_outside"] = 1
    inits = {}
    if rng.random() < 0.5:
        factors = [1.0, 1.0] + [float(pick(rng, [0.5, 1.0, 1.5, 2.0, 3.0]))
                                for _ in shape[2:]]
        inits["scales"] = np.asarray(factors, dtype=np.float32)
        inputs = ["{in}", "", "scales"]
    else:
        sizes = list(shape[:2]) + [int(rng.integers(1, 2 * s + 2)) for s in shape[2:]]
        inits["sizes"] = _i64(sizes)
        inputs = ["{in}", "", "", "sizes"]
    spec = {"op": "Resize", **attrs, **{k: v.tolist() for k, v in inits.items()}}
    return Step([_node("Resize", inputs, **attrs)], inits, spec)


def _shape_op(rng, shape):
    rank = len(shape)
    kind = pick(rng, ["Reshape", "Transpose", "Flatten", "Slice", "Concat", "Squeeze",
                       "Unsqueeze", "Gather", "Pad", "Split"])
    size = int(np.prod(shape))
    if kind == "Reshape":
        target = pick(rng, [[size], [1, size], [-1], [1, -1]] + (
            [[0, -1], [shape[0], 0, -1]] if rank >= 2 else []))
        return Step([_node("Reshape", ["{in}", "t"])], {"t": _i64(target)},
                    {"op": kind, "shape": target})
    if kind == "Transpose":
        perm = [int(p) for p in rng.permutation(rank)]
        return Step([_node("Transpose", ["{in}"], perm=perm)], {}, {"op": kind, "perm": perm})
    if kind == "Flatten":
        axis = int(rng.integers(-rank, rank + 1))
        return Step([_node("Flatten", ["{in}"], axis=axis)], {}, {"op": kind, "axis": axis})
    if kind == "Slice":
        count = int(rng.integers(1, min(2, rank) + 1))
        axes = [int(a) - (rank if rng.random() < 0.5 else 0)
                for a in rng.choice(rank, size=count, replace=False)]
        starts, ends, steps = [], [], []
        for a in axes:
            n = shape[a]
            step = pick(rng, [1, 1, 2, 3, -1, -2])
            lo, hi = -n - 3, n + 3
            start = pick(rng, [int(rng.integers(lo, hi)), 2**62, -2**62, 0, -1])
            end = pick(rng, [int(rng.integers(lo, hi)), 2**62, -2**62, n])
            starts.append(start), ends.append(end), steps.append(step)
        inits = {"s": _i64(starts), "e": _i64(ends), "a": _i64(axes), "st": _i64(steps)}
        return Step([_node("Slice", ["{in}", "s", "e", "a", "st"])], inits,
                    {"op": kind, "starts": starts, "ends": ends, "axes": axes,
                     "steps": steps})
    if kind == "Concat":
        axis = int(rng.integers(-rank, rank))
        other = list(shape)
        other[axis] = int(rng.integers(1, 3))
        inits = {"c": _f32(rng, other)}
        inputs = pick(rng, [["{in}", "c"], ["c", "{in}"], ["{in}", "{in}"]])
        return Step([_node("Concat", inputs, axis=axis)], inits if "c" in inputs else {},
                    {"op": kind, "axis": axis, "inputs": inputs})
    if kind == "Squeeze":
        ones = [a for a in range(rank) if shape[a] == 1 and a > 0]
        if not ones:
            return _elementwise(rng, shape)
        axes = [a - rank if rng.random() < 0.5 else a for a in ones]
        return Step([_node("Squeeze", ["{in}", "ax"])], {"ax": _i64(axes)},
                    {"op": kind, "axes": axes})
    if kind == "Unsqueeze":
        axis = int(rng.integers(1, rank + 1))
        axis = axis - rank - 1 if rng.random() < 0.5 else axis
        return Step([_node("Unsqueeze", ["{in}", "ax"])], {"ax": _i64([axis])},
                    {"op": kind, "axes": [axis]})
    if kind == "Gather":
        axis = int(rng.integers(1, rank)) if rank > 1 else 0
        n = shape[axis]
        idx = rng.integers(-n, n, size=pick(rng, [(), (2,), (2, 2)]))
        return Step([_node("Gather", ["{in}", "i"], axis=axis)], {"i": _i64(idx)},
                    {"op": kind, "axis": axis, "indices": np.asarray(idx).tolist()})
    if kind == "Pad":
        mode = pick(rng, ["constant", "reflect", "edge", "wrap"])
        pads = [0, 0] + [int(rng.integers(0, 3)) for _ in shape[2:]]
        pads = pads[:rank] + [0, 0][:min(2, rank)] + [int(rng.integers(0, 3))
                                                      for _ in shape[2:]]
        inits = {"p": _i64(pads)}
        inputs = ["{in}", "p"]
        if mode == "constant" and rng.random() < 0.5:
            inits["v"] = np.asarray(float(rng.normal()), dtype=np.float32)
            inputs.append("v")
        return Step([_node("Pad", inputs, mode=mode)], inits,
                    {"op": kind, "mode": mode, "pads": pads})
    axis = int(rng.integers(-rank, rank))
    n = shape[axis]
    if n >= 2 and rng.random() < 0.5:
        first = int(rng.integers(1, n))
        return Step([_node("Split", ["{in}", "sp"], ["{out}", "{out}_rest"], axis=axis)],
                    {"sp": _i64([first, n - first])},
                    {"op": "Split", "axis": axis, "split": [first, n - first]})
    parts = int(rng.integers(1, 4))
    outs = ["{out}"] + [f"{{out}}_{k}" for k in range(1, parts)]
    if rng.random() < 0.5:
        outs = outs[1:] + outs[:1]      # take a later part
    return Step([_node("Split", ["{in}"], outs, axis=axis, num_outputs=parts)], {},
                {"op": "Split", "axis": axis, "num_outputs": parts,
                 "part": outs.index("{out}")})


def _broadcast_shape(rng, shape):
    out = [d if rng.random() < 0.5 else 1 for d in shape]
    drop = int(rng.integers(0, len(out) + 1))
    return out[drop:]


def _elementwise(rng, shape):
    op = pick(rng, ["Add", "Sub", "Mul", "Div", "Relu", "Sigmoid", "Tanh", "LeakyRelu",
                     "Clip", "Sin", "Cos", "Softmax", "Abs", "Neg", "Exp", "Dropout"])
    if op in ("Add", "Sub", "Mul", "Div"):
        c = _f32(rng, _broadcast_shape(rng, shape))
        if op == "Div":
            c = np.where(np.abs(c) < 0.3, 0.3 + np.abs(c), c).astype(np.float32)
        order = ["{in}", "c"] if op == "Div" or rng.random() < 0.5 else ["c", "{in}"]
        return Step([_node(op, order)], {"c": c},
                    {"op": op, "const_shape": list(c.shape), "order": order})
    if op == "LeakyRelu":
        alpha = float(pick(rng, [0.01, 0.1, 0.5, 2.0, -0.5]))
        return Step([_node(op, ["{in}"], alpha=alpha)], {}, {"op": op, "alpha": alpha})
    if op == "Clip":
        lo, hi = sorted(rng.normal(size=2).tolist())
        inputs, inits = ["{in}"], {}
        if rng.random() < 0.7:
            inputs.append("lo"), inits.__setitem__("lo", np.asarray(lo, dtype=np.float32))
        else:
            inputs.append("")
        if rng.random() < 0.7:
            inputs.append("hi"), inits.__setitem__("hi", np.asarray(hi, dtype=np.float32))
        return Step([_node(op, inputs)], inits, {"op": op, "min": lo, "max": hi,
                                                 "inputs": inputs})
    if op == "Dropout":              # training mode on: random output, must be refused
        ratio = float(pick(rng, [0.0, 0.3, 0.5]))
        training = bool(rng.random() < 0.5)
        inits = {"r": np.asarray(ratio, dtype=np.float32), "t": np.asarray(training)}
        return Step([_node(op, ["{in}", "r", "t"])], inits,
                    {"op": op, "ratio": ratio, "training_mode": training})
    if op == "Softmax":
        axis = int(rng.integers(-len(shape), len(shape)))
        return Step([_node(op, ["{in}"], axis=axis)], {}, {"op": op, "axis": axis})
    return Step([_node(op, ["{in}"])], {}, {"op": op})


def _linear(rng, shape):
    if rng.random() < 0.5 or len(shape) != 2:
        k = shape[-1]
        w = _f32(rng, (k, int(rng.integers(1, 5))))
        if len(shape) >= 2 and rng.random() < 0.3:
            w = _f32(rng, (int(rng.integers(1, 4)), shape[-2]))
            return Step([_node("MatMul", ["w", "{in}"])], {"w": w},
                        {"op": "MatMul", "order": "w@x", "w": list(w.shape)})
        return Step([_node("MatMul", ["{in}", "w"])], {"w": w},
                    {"op": "MatMul", "order": "x@w", "w": list(w.shape)})
    trans_a, trans_b = int(rng.integers(0, 2)), int(rng.integers(0, 2))
    m, k = (shape[1], shape[0]) if trans_a else shape
    n = int(rng.integers(1, 5))
    w = _f32(rng, (n, k) if trans_b else (k, n))
    attrs = {"transA": trans_a, "transB": trans_b, "alpha": float(pick(rng, [1.0, 0.5, -2.0])),
             "beta": float(pick(rng, [1.0, 0.0, 3.0]))}
    inits, inputs = {"w": w}, ["{in}", "w"]
    if rng.random() < 0.7:
        inits["c"] = _f32(rng, pick(rng, [(n,), (1, n), (m, n), (m, 1)]))
        inputs.append("c")
    return Step([_node("Gemm", inputs, **attrs)], inits, {"op": "Gemm", **attrs})


def _batch_norm(rng, shape):
    if len(shape) < 2:
        return _elementwise(rng, shape)
    c = shape[1]
    inits = {"s": _f32(rng, (c,)), "b": _f32(rng, (c,)), "m": _f32(rng, (c,)),
             "v": (rng.random(c) + 0.1).astype(np.float32)}
    eps = float(pick(rng, [1e-5, 1e-3, 0.1]))
    return Step([_node("BatchNormalization", ["{in}", "s", "b", "m", "v"], epsilon=eps)],
                inits, {"op": "BatchNormalization", "epsilon": eps})


_CASTS = {"float16": TensorProto.FLOAT16, "double": TensorProto.DOUBLE,
          "int32": TensorProto.INT32, "int64": TensorProto.INT64, "float": TensorProto.FLOAT,
          "bfloat16": TensorProto.BFLOAT16}


def _cast(rng, shape):
    to = pick(rng, list(_CASTS))
    back = "float"
    nodes = [_node("Cast", ["{in}"], ["{out}_c"], to=_CASTS[to]),
             _node("Cast", ["{out}_c"], to=_CASTS[back])]
    return Step(nodes, {}, {"op": "Cast", "to": to, "back": back})


FAMILIES = {"conv": _conv, "conv_transpose": _conv_transpose, "pool": _pool,
            "resize": _resize, "shape": _shape_op, "elementwise": _elementwise,
            "linear": _linear, "batch_norm": _batch_norm, "cast": _cast}
