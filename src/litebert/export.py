"""`litebert export onnx`: any litebert model to ONNX, shared weights stored once, parity checked in onnxruntime.

The graph comes from torch's dynamo exporter (`torch.export` + onnxscript), with the batch and sequence axes
(and the choices axis of multiple choice) left dynamic. ALBERT applies one block L times; the exporter keeps
one initializer per parameter, weights are stored pre-transposed and the Q/K/V projection pre-concatenated
(`fold_constant_weights`), and `deduplicate_initializers` merges any identical tensors that an exporter would
still repeat, so the file is the size of the parameters. Every export is run in onnxruntime on padded probe
batches of two shapes and compared with PyTorch; the numbers come back in an `ExportReport`.

Optional int8: onnxruntime's dynamic quantisation (int8 weights of every MatMul/Gemm and of the embedding
tables, activations quantised per batch at run time); its output change against PyTorch is reported too.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import sys
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import Tensor, nn

from litebert.config import AlbertConfig
from litebert.convert import check_model_directory
from litebert.model import HEADS

log = logging.getLogger("litebert")

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
DEFAULT_OPSET = 20
"""20 is the first opset with a `Gelu` op (tanh form included): onnxruntime runs it as one kernel, where at 18
it is six element-wise ops (albert-base 8x128 in onnxruntime: ~1.3x faster). 23 would turn SDPA into
`Attention`, whose onnxruntime CPU kernel (1.32) rejects our (B, 1, 1, T) mask ("inconsistent
q_sequence_length"), so 20 it is; every export is run in onnxruntime before it is reported."""


@dataclass
class ExportReport:
    """What `export_onnx` wrote and how closely onnxruntime reproduces PyTorch on the probe batches."""

    path: str
    head: str
    outputs: list[str]
    opset: int
    parameters: int
    parameter_bytes: int  # fp32 bytes of the distinct parameters
    onnx_bytes: int  # the fp32 graph with its weights
    initializers: int
    duplicates_removed: int  # identical initializers merged after export
    max_abs_diff: float  # onnxruntime fp32 vs PyTorch, over the float outputs and both probe shapes
    int8_bytes: int | None = None
    int8_max_abs_diff: float | None = None  # the int8 graph vs PyTorch


class _TupleOutputs(nn.Module):
    """Positional inputs in ONNX order, the output dataclass as a flat tuple (what the exporter traces)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor) -> tuple[Tensor, ...]:
        return self.model(input_ids, attention_mask, token_type_ids).to_tuple()


# ---------------------------------------------------------------------------------------------- probes
def probe_inputs(config: AlbertConfig, batch: int, seq: int, choices: int | None = None,
                 seed: int = 0) -> dict[str, Tensor]:
    """Random int64 inputs (B, T) or (B, C, T): two segments, and padding at the end of every row but the
    first, so that the mask path is exercised."""
    g = torch.Generator().manual_seed(seed)
    shape = (batch, choices, seq) if choices else (batch, seq)
    ids = torch.randint(1, config.vocab_size, shape, generator=g)
    mask = torch.ones(shape, dtype=torch.long)
    mask[1:, ..., seq - seq // 4:] = 0
    types = torch.zeros(shape, dtype=torch.long)
    types[..., seq // 2:] = 1
    return dict(input_ids=ids.masked_fill(mask == 0, config.pad_token_id), attention_mask=mask,
                token_type_ids=types)


def _dynamic_shapes(choices: bool) -> dict[str, dict[int, torch.export.Dim]]:
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    dims = {0: batch, 1: torch.export.Dim("choices"), 2: seq} if choices else {0: batch, 1: seq}
    return {name: dims for name in INPUT_NAMES}


def output_names(model: nn.Module, config: AlbertConfig) -> list[str]:
    """The Hugging Face field names the model returns at inference (no labels), in tuple order."""
    choices = 3 if type(model).__name__ == "AlbertForMultipleChoice" else None
    with torch.no_grad():
        out = model(**probe_inputs(config, 2, 8, choices))
    return [name for name in out.__dataclass_fields__ if getattr(out, name) is not None]


# ---------------------------------------------------------------------------------------------- graph
def deduplicate_initializers(proto) -> int:
    """Merge bit-identical initializers into one and rewire the nodes that read them; returns how many went.

    proto: an `onnx.ModelProto`, changed in place. Tensors are compared by dtype, dims and bytes. Only the
    main graph is rewired (the exporter emits no If/Loop subgraphs for these models); an initializer that is
    also a graph output keeps its name.
    """
    from onnx import numpy_helper

    graph = proto.graph
    outputs = {o.name for o in graph.output}
    keep: dict[tuple, str] = {}
    rename: dict[str, str] = {}
    for init in graph.initializer:
        if init.name in outputs:
            continue
        data = numpy_helper.to_array(init)
        key = (init.data_type, tuple(init.dims), hashlib.sha256(data.tobytes()).hexdigest())
        if key in keep:
            rename[init.name] = keep[key]
        else:
            keep[key] = init.name
    if not rename:
        return 0
    survivors = [init for init in graph.initializer if init.name not in rename]
    del graph.initializer[:]
    graph.initializer.extend(survivors)
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    return len(rename)


FOLDABLE = ("Transpose", "Concat")


def _fold(node, arrays: list):
    """The numpy value of a Transpose or Concat node whose inputs are all `arrays`."""
    from onnx import helper

    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type == "Transpose":
        return arrays[0].transpose(attrs.get("perm")).copy()
    return np.concatenate(arrays, axis=attrs["axis"])


def fold_constant_weights(proto) -> int:
    """Replace each Transpose or Concat of initializers by its value as an initializer; returns how many went.

    The exporter writes nn.Linear as MatMul(x, Transpose(W)), and litebert's fused Q/K/V projection as
    Transpose(Concat(Wq, Wk, Wv)), and leaves both for run time (its folder skips large constants).
    onnxruntime folds them when loading, but int8 quantisation only quantises a MatMul whose weight is an
    initializer: unfolded, those weights would stay fp32. Nodes are in topological order, so one pass folds
    chains. Initializers read only through a folded node are then dropped, so each weight is still stored once.
    """
    from onnx import numpy_helper

    graph = proto.graph
    inits = {init.name: init for init in graph.initializer}
    folded = []
    for node in list(graph.node):
        if node.op_type in FOLDABLE and all(name in inits for name in node.input):
            value = _fold(node, [numpy_helper.to_array(inits[name]) for name in node.input])
            inits[node.output[0]] = numpy_helper.from_array(value, node.output[0])
            graph.initializer.append(inits[node.output[0]])
            graph.node.remove(node)
            folded.append(node)
    still_read = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    unread = [init for init in graph.initializer if init.name not in still_read]
    for init in unread:
        graph.initializer.remove(init)
    return len(folded)


def _export_graph(model: nn.Module, config: AlbertConfig, path: Path, opset: int, names: list[str]) -> int:
    """torch → ONNX at `path` (weights inside the file), then deduplicate; returns the duplicates removed."""
    import onnx

    choices = 3 if type(model).__name__ == "AlbertForMultipleChoice" else None
    # B=2, T=16 (not 1, not equal) so that torch.export cannot specialise either axis to a constant.
    args = tuple(probe_inputs(config, 2, 16, choices).values())
    with warnings.catch_warnings():  # one Dim object per axis, named on every input: the exporter notes it
        warnings.filterwarnings("ignore", message=".*axis name.*will not be used")
        program = torch.onnx.export(_TupleOutputs(model).eval(), args, dynamo=True, opset_version=opset,
                                    input_names=list(INPUT_NAMES), output_names=names,
                                    dynamic_shapes=_dynamic_shapes(choices is not None), verbose=False)
    proto = program.model_proto
    for node in proto.graph.node:  # source paths and stack traces: ~0.9 KB a node, of use to no runtime
        del node.metadata_props[:]
    fold_constant_weights(proto)
    removed = deduplicate_initializers(proto)
    # One file: every released ALBERT (xxlarge: 0.9 GB) is under protobuf's 2 GB limit.
    onnx.save_model(proto, str(path))
    return removed


# ---------------------------------------------------------------------------------------------- parity
def ort_session(path: str | Path, threads: int | None = None, spinning: bool = True):
    """An onnxruntime CPU session with full graph optimisation; `threads` sets intra-op parallelism.

    `spinning=False` makes its idle threads sleep instead of busy-waiting for the next run, so they cannot take
    the cores from other work in the process between runs (the benchmarks time PyTorch right after onnxruntime).
    benchmarks/bench_ort_spinning.py measures both effects; on a 2-core no-AMX Xeon neither was above the noise.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


BACKENDS = ("torch", "torch-int8", "onnxruntime", "onnxruntime-int8")
"""How a trained model can run for inference (the pipelines, `litebert evaluate` / `predict`): "torch" as it is;
"torch-int8" with its encoder's matmuls in int8 (`litebert.quantize`); "onnxruntime" / "onnxruntime-int8" as its
ONNX export with fp32 or int8 weights (`OnnxModel`, exported once and cached). All but "torch" run on the CPU in
fp32: `backend_model` makes them."""


def check_backend(backend: str, device: str | None = None, bf16: bool | None = None) -> None:
    """A known backend, and no GPU or bf16 asked of a CPU one (each named in the error)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    if backend != "torch" and (device not in (None, "cpu") or bf16):
        raise ValueError(f"backend {backend!r} runs on the CPU without bf16; got device {device} and bf16 {bf16} "
                         f"(use backend 'torch' for those)")


def backend_model(model: nn.Module, backend: str):
    """`model` as a CPU `backend` runs it (see BACKENDS; "torch": the model itself, in eval mode)."""
    check_backend(backend)
    model = model.eval()
    if backend == "torch":
        return model
    model = model.float().cpu()
    if backend == "torch-int8":
        from litebert.quantize import quantize_dynamic_int8

        return quantize_dynamic_int8(model)
    return OnnxModel(model, "int8" if backend == "onnxruntime-int8" else None)


class OnnxModel:
    """An `export_onnx` file in onnxruntime, called like the litebert model it was exported from: int64 inputs
    (torch tensors or numpy arrays) in, an object with the model's output fields as torch tensors out. It runs on
    the CPU; `config` is the model's."""

    def __init__(self, model: nn.Module, quantize: str | None = None, threads: int | None = None):
        self.config: AlbertConfig = model.config
        self.session = ort_session(cached_onnx(model, quantize), threads=threads or torch.get_num_threads(),
                                   spinning=False)
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.input_names = {i.name for i in self.session.get_inputs()}

    def __call__(self, **inputs):
        extra = sorted(k for k, v in inputs.items() if v is not None and k not in self.input_names)
        if extra:
            raise ValueError(f"the ONNX graph takes {', '.join(sorted(self.input_names))}, not {', '.join(extra)}: "
                             f"run this model with backend 'torch'")
        feed = {k: v.cpu().numpy() if isinstance(v, torch.Tensor) else v for k, v in inputs.items() if v is not None}
        values = self.session.run(self.output_names, feed)
        return SimpleNamespace(**{name: torch.from_numpy(v) for name, v in zip(self.output_names, values)})

    def eval(self) -> "OnnxModel":
        return self


def max_abs_diff(model: nn.Module, config: AlbertConfig, path: Path,
                 shapes: tuple[tuple[int, int], ...] = ((3, 24), (1, 40))) -> float:
    """Largest |onnxruntime - PyTorch| over the float outputs, on padded probe batches of each (B, T) in `shapes`
    (none equal to the export's 2 x 16, so the dynamic axes are exercised)."""
    session = ort_session(path)
    names = [o.name for o in session.get_outputs()]
    choices = 3 if type(model).__name__ == "AlbertForMultipleChoice" else None
    worst = 0.0
    for i, (batch, seq) in enumerate(shapes):
        inputs = probe_inputs(config, batch, seq, choices, seed=i + 1)
        with torch.no_grad():
            ref = model(**inputs)
        got = session.run(names, {k: v.numpy() for k, v in inputs.items()})
        for name, value in zip(names, got):
            # Index outputs (start_top_index, ...) are left out: one swapped rank is not a size of error.
            if value.dtype.kind == "f":
                worst = max(worst, (torch.from_numpy(value) - getattr(ref, name)).abs().max().item())
    return worst


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 quantisation of every MatMul/Gemm weight (onnxruntime.quantization)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)


# ---------------------------------------------------------------------------------------------- export
def export_onnx(model: nn.Module, path: str | Path, opset: int = DEFAULT_OPSET,
                quantize: str | None = None) -> ExportReport:
    """Write `model` (any litebert class, fp32, eval) as ONNX at `path` and check it in onnxruntime.

    Inputs input_ids / attention_mask / token_type_ids: int64 (B, T), or (B, C, T) for multiple choice.
    Outputs: the model's output fields, e.g. last_hidden_state (B, T, H) and pooler_output (B, H), or logits.
    With quantize="int8", `path` holds the int8 graph; the fp32 one is measured on the way.
    """
    if quantize not in (None, "int8"):
        raise ValueError(f"quantize must be None or 'int8', got {quantize!r}")
    model = model.float().eval()
    config: AlbertConfig = model.config
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = output_names(model, config)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        fp32 = Path(tmp) / "fp32.onnx" if quantize else path
        removed = _export_graph(model, config, fp32, opset, names)
        report = ExportReport(
            path=str(path), head=type(model).__name__, outputs=names, opset=opset,
            parameters=sum(p.numel() for p in model.parameters()),
            parameter_bytes=4 * sum(p.numel() for p in model.parameters()),
            onnx_bytes=fp32.stat().st_size, initializers=_count_initializers(fp32),
            duplicates_removed=removed, max_abs_diff=max_abs_diff(model, config, fp32))
        if quantize:
            quantize_int8(fp32, path)
            report.int8_bytes = path.stat().st_size
            report.int8_max_abs_diff = max_abs_diff(model, config, path)
    return report


def cached_onnx(model: nn.Module, quantize: str | None = None) -> Path:
    """The ONNX file of `model` (see `export_onnx`), exported once and kept in $LITEBERT_ONNX_DIR (default
    ~/.cache/litebert/onnx). The file is named by a digest of the weights, config, head, opset, quantisation and
    torch version, so a changed model gets a new export; it appears whole or not at all."""
    from litebert.fetch import DEFAULT_CACHE
    from litebert.files import write_atomic

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().contiguous().cpu().numpy().tobytes())
    digest.update(json.dumps([model.config.to_dict(), type(model).__name__, DEFAULT_OPSET, quantize,
                              torch.__version__], sort_keys=True, default=str).encode())
    directory = Path(os.environ.get("LITEBERT_ONNX_DIR") or DEFAULT_CACHE / "onnx")
    path = directory / f"{type(model).__name__}-{quantize or 'fp32'}-{digest.hexdigest()[:16]}.onnx"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        log.info("exporting %s to ONNX%s for onnxruntime, once (cached as %s)", type(model).__name__,
                 f" with {quantize} weights" if quantize else "", path)
        with _quiet():
            write_atomic(path, lambda tmp: export_onnx(model, tmp, quantize=quantize))
    return path


@contextlib.contextmanager
def _quiet():
    """Silence the exporter's and the quantiser's advice for the length of an export made on a user's behalf
    (torchvision ops it skips, "consider pre-processing"): warnings, and log records below ERROR."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


def _count_initializers(path: Path) -> int:
    import onnx

    return len(onnx.load(str(path), load_external_data=False).graph.initializer)


def saved_architecture(model_dir: str | Path) -> str | None:
    """The class config.json's `architectures` names first, if any."""
    data = json.loads((Path(model_dir) / "config.json").read_text())
    return (data.get("architectures") or [None])[0]


def load_for_export(model_dir: str | Path, head: str = "base") -> nn.Module:
    """The model in `model_dir` as the class `head` names: "base" (AlbertModel: encoder + pooler), "auto"
    (config.json's `architectures`), or a class name such as AlbertForSequenceClassification."""
    if head == "auto":
        check_model_directory(Path(model_dir))
        head = saved_architecture(model_dir) or "AlbertModel"
    elif head == "base":
        head = "AlbertModel"
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; choose base, auto or one of {', '.join(HEADS)}")
    return HEADS[head].from_pretrained(model_dir)


# ---------------------------------------------------------------------------------------------- cli
def add_commands(subparsers) -> None:
    export = subparsers.add_parser("export", help="export a model to another runtime's format")
    formats = export.add_subparsers(dest="format", metavar="FORMAT", required=True)
    p = formats.add_parser("onnx", help="ONNX graph with dynamic batch/sequence axes, shared weights once")
    p.add_argument("model_dir", help="checkpoint directory (config.json + model.safetensors)")
    p.add_argument("out", help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    p.add_argument("--quantize", choices=["int8"], help="dynamic int8 quantisation of the weights")
    p.add_argument("--head", default="base",
                   help="base (encoder + pooler, default), auto (config.json architectures) or a class name")
    p.set_defaults(func=_cmd_export_onnx)
    h = formats.add_parser("hf", help="a Hugging Face ALBERT directory (refused for layouts HF cannot hold)")
    h.add_argument("model_dir", help="checkpoint directory (config.json + model.safetensors)")
    h.add_argument("out", help="the directory to write")
    h.add_argument("--head", default="auto",
                   help="auto (config.json architectures, default), base, or a class name")
    h.set_defaults(func=_cmd_export_hf)


def _cmd_export_hf(args: argparse.Namespace) -> int:
    """Load, then write HF's layout (the tokenizer files travel along); a model HF cannot hold is refused."""
    from litebert.tokenizer import copy_tokenizer_files

    model = load_for_export(args.model_dir, args.head)
    model.save_pretrained(args.out, layout="huggingface")
    copy_tokenizer_files(args.model_dir, args.out)
    print(f"{type(model).__name__} -> {args.out} (Hugging Face ALBERT layout)")
    return 0


PRETRAINING_HEADS = ("AlbertModel", "AlbertForPreTraining", "AlbertForMaskedLM")
"""Heads `--head base` drops without a word: a pretrained model is exported for its encoder."""


def _cmd_export_onnx(args: argparse.Namespace) -> int:
    report = export_onnx(load_for_export(args.model_dir, args.head), args.out, args.opset, args.quantize)
    saved = saved_architecture(args.model_dir)
    if args.head == "base" and saved in HEADS and saved not in PRETRAINING_HEADS:  # a fine-tuned model
        print(f"litebert export: note: the graph leaves out the {saved} head saved with the model; --head auto "
              f"exports it", file=sys.stderr)
    mb = lambda n: f"{n / 1e6:.1f} MB"  # noqa: E731
    print(f"{report.head} -> {report.path}: outputs {', '.join(report.outputs)}; opset {report.opset}")
    print(f"  fp32: {mb(report.onnx_bytes)} for {mb(report.parameter_bytes)} of parameters "
          f"({report.initializers} initializers, {report.duplicates_removed} duplicates merged); "
          f"max |ort - torch| = {report.max_abs_diff:.2e}")
    if report.int8_bytes is not None:
        print(f"  int8: {mb(report.int8_bytes)}; max |ort int8 - torch| = {report.int8_max_abs_diff:.2e}")
    print(json.dumps(asdict(report)))
    return 0
