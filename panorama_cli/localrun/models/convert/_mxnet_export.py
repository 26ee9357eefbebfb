"""Convert an MXNet symbol + params export to ONNX and check it (runs in the mxnet converter
environment: ``python _mxnet_export.py SPEC_JSON``; standalone, imports nothing of panorama-cli).

Spec: {"model_dir": str, "inputs": [{"name": str, "shape": [int, ...]}], "output": str,
"seed": int}. The last stdout line is one JSON object: {"ok": true, "framework_version",
"output_names", "max_rel_error"} or {"ok": false, "error": "one line"} (exit status 1).
Everything the libraries print goes to stderr.
"""

import json
import os
import re
import sys
from pathlib import Path

# this folder holds panorama-cli's mxnet.py: never let it shadow the real package (the driver
# runs the script with ``python -I``, which leaves the folder out; this covers a manual run)
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]


#: The ONNX opset the model is written in: the newest that mxnet 1.9.1 has translations for.
OPSET = 13
#: The check's limit (the driver's MAX_REL_ERROR), here to know when to look before a ranking.
TOLERANCE = 1e-3


class Failure(Exception):
    """What is wrong, in one line, for the user."""


def find_files(model_dir):
    """(symbol file, params file) of the one model in ``model_dir`` (the highest epoch)."""
    symbols = sorted(model_dir.rglob("*-symbol.json"))
    if not symbols:
        present = sorted(p.name for p in model_dir.rglob("*") if p.is_file())[:6]
        raise Failure(
            "no MXNet symbol file in the archive (found: {}); MXNet needs <name>-symbol.json "
            "and <name>-NNNN.params, as HybridBlock.export writes them".format(
                ", ".join(present) or "nothing"
            )
        )
    pairs = []
    for symbol in symbols:
        prefix = symbol.name[: -len("-symbol.json")]
        params = sorted(
            p for p in symbol.parent.glob(prefix + "-*.params")
            if re.fullmatch(re.escape(prefix) + r"-\d+\.params", p.name)
        )  # fmt: skip
        if params:
            pairs.append((symbol, params[-1]))
    if not pairs:
        symbol = symbols[0]
        prefix = symbol.name[: -len("-symbol.json")]
        raise Failure(
            f"{symbol.name} has no parameters file: MXNet needs {prefix}-NNNN.params beside "
            f"it (e.g. {prefix}-0000.params, as HybridBlock.export writes it)"
        )
    if len(pairs) > 1:
        raise Failure(
            "several MXNet models in the archive ({}); keep one".format(
                ", ".join(p[0].name for p in pairs)
            )
        )
    return pairs[0]


def data_inputs(mx, symbol_file, params_file):
    """The symbol's inputs that the params file does not hold, in the symbol's order."""
    sym = mx.sym.load(str(symbol_file))
    saved = mx.nd.load(str(params_file))
    names = {k.split(":", 1)[1] if k.startswith(("arg:", "aux:")) else k for k in saved}
    return sym, [n for n in sym.list_inputs() if n not in names]


def tidy(onnx_path, symbol_outputs):
    """Two fixes to the exporter's graph: it lists the weights among the graph inputs (keep
    the data inputs only), and orders the outputs by graph node, not as the symbol gives them
    (put them in the symbol's order: an SSD's class ids, scores, boxes). Returns the output
    names in that order."""
    import onnx

    model = onnx.load(onnx_path)
    weights = {i.name for i in model.graph.initializer}
    kept = [i for i in model.graph.input if i.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    outputs = {o.name: o for o in model.graph.output}
    ordered = []
    for name in symbol_outputs:  # "net0_argmax0_output" is graph output "net0_argmax0"
        candidates = (name, re.sub(r"_output$", "", name), re.sub(r"_output(\d+)$", r"\1", name))
        found = next((outputs[c] for c in candidates if c in outputs), None)
        if found is None or any(found is o for o in ordered):
            ordered = list(model.graph.output)  # unknown naming: the check will tell
            break
        ordered.append(found)
    if len(ordered) == len(model.graph.output):
        ordered = [onnx.ValueInfoProto.FromString(o.SerializeToString()) for o in ordered]
        del model.graph.output[:]
        model.graph.output.extend(ordered)
    onnx.save(model, onnx_path)
    return [o.name for o in model.graph.output]


def relative_error(expected, got):
    """max|a - b| / max(max|a|, 1e-12) over the finite values; inf where one side is not
    finite and the other differs (an equal inf or NaN on both sides counts as equal)."""
    import numpy as np

    a = np.asarray(expected, dtype=np.float64)
    b = np.asarray(got, dtype=np.float64)
    if a.shape != b.shape:
        raise Failure(f"output shapes differ after conversion: {a.shape} vs {b.shape}")
    if a.size == 0:
        return 0.0
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    if not np.all(same | (np.isfinite(a) & np.isfinite(b))):
        return float("inf")
    finite = np.isfinite(a)
    scale = float(np.max(np.abs(a[finite]))) if finite.any() else 0.0
    diff = np.where(same, 0.0, np.abs(np.where(finite, a, 0.0) - np.where(finite, b, 0.0)))
    return float(np.max(diff) / max(scale, 1e-12))


#: Operators that pick and order elements by value: near-equal scores (a random input makes
#: many) may come out in another order or cross the top-k cut after any float change.
RANKED_OPS = ("_contrib_box_nms", "_contrib_box_non_maximum_suppression", "topk", "argsort", "sort")


def ranked_inputs(sym):
    """The internal outputs feeding the first ranking operator (an SSD's box_nms input: every
    candidate detection), and its name; ([], None) when the graph has none."""
    graph = json.loads(sym.tojson())
    nodes = graph["nodes"]
    available = set(sym.get_internals().list_outputs())
    for node in nodes:
        if node["op"] not in RANKED_OPS:
            continue
        outputs = []
        for entry in node["inputs"]:
            source = nodes[entry[0]]
            if source["op"] == "null":
                continue
            for name in (
                source["name"] + "_output",
                "{}_output{}".format(source["name"], entry[1]),
            ):
                if name in available:
                    outputs.append(name)
                    break
        return outputs, node["op"].replace("_contrib_", "")
    return [], None


def export(mx, sym, params, names, shapes, output, version):
    """``mxnet.onnx.export_model`` of ``sym`` (data inputs ``names``), then :func:`tidy`."""
    import numpy as np

    try:
        mx.onnx.export_model(
            sym, params, [shapes[n] for n in names], [np.float32] * len(names), output,
            verbose=False,
        )  # fmt: skip
    except AttributeError as exc:
        found = re.search(r"op type (\S+?)\.? yet", str(exc))
        if not found:
            raise
        raise Failure(
            f"MXNet {version}'s ONNX exporter has no conversion for operator "
            f"{found.group(1)}: replace it in the model, or export the model to ONNX another "
            "way and pass --model"
        ) from None
    return tidy(output, sym.list_outputs())


def errors_of(mx, sym, params, names, feed, onnx_path):
    """Relative max error per output of ``sym`` in MXNet vs ``onnx_path`` in onnxruntime,
    and both sides' outputs."""
    import onnxruntime as ort

    args = {n: mx.nd.array(feed[n]) if n in feed else params[n] for n in sym.list_arguments()}
    aux = {n: params[n] for n in sym.list_auxiliary_states()}
    executor = sym.bind(mx.cpu(), args, aux_states=aux, grad_req="null")
    expected = [r.asnumpy() for r in executor.forward(is_train=False)]
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
    got = session.run(None, feed)
    if len(got) != len(expected):
        raise Failure(f"the ONNX model has {len(got)} outputs, MXNet gives {len(expected)}")
    return [relative_error(a, b) for a, b in zip(expected, got, strict=True)]


def convert(spec):
    import numpy as np

    model_dir = Path(spec["model_dir"])
    symbol_file, params_file = find_files(model_dir)
    import mxnet as mx

    version = mx.__version__
    sym, names = data_inputs(mx, symbol_file, params_file)
    given = [i["name"] for i in spec["inputs"]]
    shapes = {i["name"]: tuple(int(d) for d in i["shape"]) for i in spec["inputs"]}
    unknown = [n for n in given if n not in names]
    if unknown or not given:
        raise Failure(
            "descriptor input{} {} not in {}: the model's inputs are {} "
            "(fix mlModelDescriptor.inputs[].name)".format(
                "s" if len(unknown) > 1 else "",
                ", ".join(unknown) or "(none given)",
                symbol_file.name,
                ", ".join(names) or "none",
            )
        )
    missing = [n for n in names if n not in shapes]
    if missing:
        raise Failure(
            "the model also takes input{} {}; add {} to mlModelDescriptor.inputs "
            "with {} shape".format(
                "s" if len(missing) > 1 else "",
                ", ".join(missing),
                "them" if len(missing) > 1 else "it",
                "their" if len(missing) > 1 else "its",
            )
        )
    output = spec["output"]
    # mxnet 1.9.1's translations go up to opset 13, but it labels the model with onnx's
    # newest opset (20 for onnx 1.15), where e.g. ReduceMax takes its axes as an input
    import onnx.checker
    import onnx.defs

    onnx.defs.onnx_opset_version = lambda: OPSET
    onnx.checker.DEFAULT_CONTEXT.opset_imports = {"": OPSET}  # the exporter's check_graph
    saved = mx.nd.load(str(params_file))  # "arg:NAME" / "aux:NAME" as Gluon saves them
    params = {
        k.split(":", 1)[1] if k.startswith(("arg:", "aux:")) else k: v for k, v in saved.items()
    }
    output_names = export(mx, sym, params, names, shapes, output, version)

    rng = np.random.default_rng(int(spec.get("seed", 0)))
    feed = {n: rng.random(shapes[n], dtype=np.float32) for n in names}
    errors = errors_of(mx, sym, params, names, feed, output)
    result = {
        "ok": True,
        "framework_version": version,
        "output_names": output_names,
        "max_rel_error": max(errors, default=0.0),
    }
    inputs_of_ranking, op = ranked_inputs(sym)
    if result["max_rel_error"] > TOLERANCE and inputs_of_ranking:
        # a detector's NMS / top-k: compare what it ranks, where ties cannot reorder anything
        internals = sym.get_internals()
        before = mx.sym.Group([internals[n] for n in inputs_of_ranking])
        before_onnx = str(Path(output).with_name("before_ranking.onnx"))
        export(mx, before, params, names, shapes, before_onnx, version)
        before_errors = errors_of(mx, before, params, names, feed, before_onnx)
        result["output_rel_error"] = result["max_rel_error"]
        result["max_rel_error"] = max(before_errors, default=0.0)
        result["checked"] = (
            f"the input of {op} (ranked outputs reorder near-equal scores; after {op}: "
            f"{result['output_rel_error']:.2g})"
        )
    return result


def main():
    result_fd = os.dup(1)
    os.dup2(2, 1)  # whatever mxnet/onnx print (C or Python) goes to stderr
    sys.stdout = sys.stderr
    try:
        with open(sys.argv[1]) as stream:
            spec = json.load(stream)
        result = convert(spec)
    except Failure as exc:
        result = {"ok": False, "error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - one line for the user, the trace on stderr
        import traceback

        traceback.print_exc()
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        error = f"MXNet export failed: {type(exc).__name__}: {first[:300]}"
        result = {"ok": False, "error": error}
    os.write(result_fd, (json.dumps(result) + "\n").encode())
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
