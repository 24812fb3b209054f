"""ONNX export of neuropil models, checked against ONNX Runtime, and weights read back.

    import neuropil.onnx
    neuropil.onnx.export(model, x[:1], "model.onnx")        # opset 17, dynamic batch
    neuropil.onnx.load_weights(same_architecture, "model.onnx")

Needs the ``onnx`` package (``pip install "neuropil[onnx]"``); ``import neuropil`` does
not import this module. Files use the default ONNX domain at opset 17 (IR version 8):
ONNX Runtime 1.12 and later run them.

Layers and the ONNX operators they become:

=================================  ===========================================
Sequential (nested too)            the children's nodes, in order
any other model (a Module whose    its recorded forward (nn.graph.trace) walked
forward calls layers)              call by call: merges, contiguous reshapes
                                   (Reshape), several inputs and outputs, a
                                   layer used twice, recurrent state passed on
Concat / Add                       Concat / Add (Sum for three or more)
Linear                             Gemm (2-D input); Transpose + MatMul + Add
Conv2d / ConvTranspose2d           Conv / ConvTranspose (groups, dilation,
                                   output_padding)
MaxPool2d / AvgPool2d              MaxPool / AveragePool (count_include_pad;
                                   ceil_mode with PyTorch's last-window rule)
Flatten                            Flatten (start_dim 1) or Reshape
ReLU / Sigmoid / Tanh / Softmax    Relu / Sigmoid / Tanh / Softmax(axis=dim)
Dropout / Identity                 Identity (eval form)
Embedding                          Gather (int64 indices)
RNN / LSTM / GRU                   RNN / LSTM / GRU, one node per layer, gates
                                   reordered (LSTM ifgo -> iofc, GRU rzn -> zrh,
                                   linear_before_reset=1), bidirectional,
                                   num_layers > 1, batch_first (Transposes);
                                   in a graph model state= is an input
                                   (initial_h/c) and layer.state an output
LastStep                           Gather(index -1) on the time axis
TimeDistributed(m)                 Reshape, m's nodes, Reshape
LeakyReLU / ELU                    LeakyRelu / Elu
GELU (erf and tanh forms)          Erf or Tanh with Mul/Add (no Gelu before 20)
Softplus(beta, threshold)          Softplus, Mul/Div by beta, Where(threshold)
BatchNorm1d / BatchNorm2d          BatchNormalization (eval: running statistics);
                                   ReduceMean... when track_running_stats=False
Upsample (nearest, linear,         Resize (asymmetric+floor nearest; half_pixel
bilinear), Upsampling*2d           or align_corners linear); 3-D via Unsqueeze
Dropout2d                          Identity (eval form)
=================================  ===========================================

(The rows from LeakyReLU down apply when those layers exist in the installed neuropil.)

Not exported (``ExportError`` names the layer): a recurrent layer's ``lengths=`` (the
export replays every layer call and refuses a model whose replay differs from its own
forward), forwards the graph engine cannot trace (NumPy arithmetic between layers;
integer inputs, buffers and arrays marked with ``nn.detach`` are fine, and so is a layer
called twice), float64 models (convert with ``model.float()``) and custom layers without a
converter.

Adding a layer is one function::

    @neuropil.onnx.register(MyLayer)
    def convert_my_layer(ctx, layer, inputs, output):
        return ctx.node("Relu", [inputs[0].name])

(see ``neuropil.onnx._registry`` for what ``ctx`` offers). Initializers are exactly the
model's ``state_dict`` entries, under its keys and in its layouts; the graph reorders
them where ONNX wants another layout, which ONNX Runtime folds away on load.
"""
try:
    import onnx as _onnx  # noqa: F401
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError("neuropil.onnx needs the onnx package: pip install 'neuropil[onnx]' "
                      "(or pip install onnx)") from err

from ._registry import ExportError, register, registered
from ._graph import ExportContext, Value
from . import _layers, _recurrent, _newer  # noqa: F401  (register the converters)
from ._export import IR_VERSION, OPSET, export
from ._load import load_weights

__all__ = ["export", "load_weights", "register", "registered", "ExportError", "OPSET",
           "IR_VERSION", "ExportContext", "Value"]
